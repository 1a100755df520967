//! The `vcintel` binary; the command line lives in `vcintel_api::cli`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    vcintel_api::cli::main().await
}
