// `sqlx::migrate!` embeds the migrations at compile time but cannot tell
// cargo to rebuild when they change; this does.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
