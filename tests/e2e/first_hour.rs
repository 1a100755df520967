//! What a new operator meets in the first hour, asserted on the binary's
//! own output and exit status: configuration mistakes name the environment
//! variable to fix, and no secret ever appears in any output.

use std::process::Command;

/// `vcintel args` with nothing in its environment but `env` (and PATH):
/// its exit status and everything it printed.
fn run_bare(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("run vcintel");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), printed)
}

const DATABASE: (&str, &str) = ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none");
const SHORT_SECRET: &str = "Zq8rK0-too-short";
const GOOD_SECRET: &str = "Xy7Wv9-a-secret-long-enough-for-the-service-0123";

/// What is wrong, the arguments, the environment, how the output starts,
/// and a value that must appear nowhere in it.
type Case = (
    &'static str,
    Vec<&'static str>,
    Vec<(&'static str, &'static str)>,
    &'static str,
    Option<&'static str>,
);

#[test]
fn configuration_mistakes_name_the_variable_exit_2_and_never_show_a_secret() {
    let cases: Vec<Case> = vec![
        (
            "a short JWT secret",
            vec!["serve"],
            vec![DATABASE, ("VCINTEL_JWT_SECRET", SHORT_SECRET)],
            "error: VCINTEL_JWT_SECRET: invalid value: must be at least 32 bytes",
            Some(SHORT_SECRET),
        ),
        (
            "a short operator token",
            vec!["serve"],
            vec![
                DATABASE,
                ("VCINTEL_JWT_SECRET", GOOD_SECRET),
                ("VCINTEL_ADMIN_TOKEN", SHORT_SECRET),
            ],
            "error: VCINTEL_ADMIN_TOKEN: invalid value: must be at least 32 bytes",
            Some(SHORT_SECRET),
        ),
        (
            "a secret on the command line",
            vec!["serve", "--jwt-secret", GOOD_SECRET],
            vec![DATABASE],
            "error: VCINTEL_JWT_SECRET must be set in the environment, not on the command line",
            Some(GOOD_SECRET),
        ),
        (
            "nothing set",
            vec!["serve"],
            vec![],
            "error: missing settings: DATABASE_URL (--database-url), VCINTEL_JWT_SECRET",
            None,
        ),
        (
            "an address that is not one",
            vec!["serve"],
            vec![
                DATABASE,
                ("VCINTEL_JWT_SECRET", GOOD_SECRET),
                ("VCINTEL_BIND", "nowhere"),
            ],
            "error: VCINTEL_BIND (--bind): invalid value 'nowhere': ",
            None,
        ),
    ];
    for (what, args, env, says, secret) in cases {
        let (status, printed) = run_bare(&args, &env);
        assert_eq!(status, Some(2), "{what}: {printed}");
        assert!(printed.starts_with(says), "{what}: {printed}");
        if let Some(secret) = secret {
            assert!(
                !printed.contains(secret),
                "{what} shows the secret: {printed}"
            );
        }
    }
}

#[test]
fn log_settings_it_cannot_honour_are_refused_and_pipes_get_no_colour() {
    let base = [DATABASE, ("VCINTEL_JWT_SECRET", GOOD_SECRET)];
    let (status, printed) = run_bare(
        &["serve"],
        &[base[0], base[1], ("VCINTEL_LOG_FORMAT", "bogus")],
    );
    assert_eq!(status, Some(2), "{printed}");
    assert!(
        printed.starts_with("error: VCINTEL_LOG_FORMAT: must be `json` or `pretty`"),
        "{printed}"
    );
    let (status, printed) = run_bare(
        &["serve"],
        &[base[0], base[1], ("RUST_LOG", "vcintel=loud")],
    );
    assert_eq!(status, Some(2), "{printed}");
    assert!(printed.starts_with("error: RUST_LOG: "), "{printed}");

    // Pretty logs into a pipe: words, no terminal escapes. (The database
    // is unreachable, so the service logs and stops.)
    let (status, printed) = run_bare(
        &["serve"],
        &[
            base[0],
            base[1],
            ("VCINTEL_LOG_FORMAT", "pretty"),
            ("VCINTEL_DB_ACQUIRE_TIMEOUT_MS", "500"),
        ],
    );
    assert_ne!(status, Some(0), "{printed}");
    assert!(printed.contains("connecting to Postgres"), "{printed}");
    assert!(
        !printed.contains('\u{1b}'),
        "colour codes in a pipe: {printed:?}"
    );
}

#[test]
fn an_unreachable_database_is_named_with_its_address_and_the_cause() {
    let (status, printed) = run_bare(
        &["serve"],
        &[
            (
                "DATABASE_URL",
                "postgres://someone:Pw-9k2-secret@127.0.0.1:1/none",
            ),
            ("VCINTEL_JWT_SECRET", GOOD_SECRET),
        ],
    );
    assert_eq!(status, Some(1), "{printed}");
    assert!(
        printed.contains("DATABASE_URL (127.0.0.1:1/none): connection refused"),
        "{printed}"
    );
    assert!(!printed.contains("Pw-9k2-secret"), "{printed}");
}

#[tokio::test]
async fn the_start_up_line_and_the_bare_address_say_where_to_go() {
    let env = crate::helpers::TestEnv::new().await;
    let log = std::env::temp_dir().join(format!("vcintel-first-hour-{}.log", env.prefix));
    let (process, base) = env.spawn_logged("api", &[], &log).await;
    let _process = crate::helpers::KillOnDrop(process);
    let printed = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    // The README's quick start shows the very line the service prints.
    let readme = include_str!("../../README.md");
    let documented = readme
        .lines()
        .find_map(|line| line.strip_prefix("INFO "))
        .expect("the README shows the start-up line");
    let host = base.trim_start_matches("http://");
    let expected = documented.replace("127.0.0.1:8080", host);
    assert!(
        printed.contains(&expected),
        "the start-up line reads as the README shows it ({expected}): {printed}"
    );
    for url in ["/v1", "/docs", "/health/ready"] {
        assert!(
            printed.contains(&format!("{base}{url}")),
            "{url}: {printed}"
        );
    }
    let root: serde_json::Value = env
        .http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(root["docs"], "/docs");
    assert_eq!(root["openapi"], "/openapi.json");
    assert_eq!(root["health"], "/health");
}

#[tokio::test]
async fn unreachable_nats_is_named_with_its_address_and_the_cause() {
    let env = crate::helpers::TestEnv::new().await;
    let dead = crate::helpers::free_port();
    let nats_url = format!("nats://127.0.0.1:{dead}");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .args(["serve", "--only", "relay"])
        .env("DATABASE_URL", &env.database_url)
        .env("NATS_URL", &nats_url)
        .env("VCINTEL_JWT_SECRET", GOOD_SECRET)
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains(&format!("127.0.0.1:{dead}: connection refused")),
        "{printed}"
    );
    assert!(printed.contains("NATS_URL"), "{printed}");
}

#[tokio::test]
async fn a_command_on_an_unmigrated_database_says_to_migrate() {
    let admin = crate::helpers::admin_database_url();
    let name = format!("unmigrated_{}", uuid::Uuid::now_v7().simple());
    let pool = vcintel_infra::db::connect(&admin, 1).await.unwrap();
    sqlx::query(&format!("create database {name}"))
        .execute(&pool)
        .await
        .unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .args(["events", "verify"])
        .env(
            "DATABASE_URL",
            crate::helpers::url_with_database(&admin, &name),
        )
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .output()
        .await
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(printed.contains("run `vcintel migrate up`"), "{printed}");
    assert!(!printed.contains("does not exist"), "{printed}");
}

#[tokio::test]
async fn subcommands_take_their_settings_alike_and_refuse_unknown_names() {
    let env = crate::helpers::TestEnv::new().await;
    let vcintel = |args: Vec<String>| {
        let env = &env;
        async move {
            let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_vcintel"))
                .env_remove("DATABASE_URL")
                .env_remove("NATS_URL")
                .env(
                    "VCINTEL_PRIVACY_MASTER_KEY",
                    crate::helpers::PRIVACY_MASTER_KEY,
                )
                .env("VCINTEL_NATS_PREFIX", &env.prefix)
                .args(&args)
                .output()
                .await
                .unwrap();
            (
                output.status.code(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            )
        }
    };
    // The database flag before or after the subcommand's action.
    for args in [
        vec!["events", "--database-url", &env.database_url, "verify"],
        vec!["events", "verify", "--database-url", &env.database_url],
    ] {
        let (status, printed) = vcintel(args.iter().map(|a| a.to_string()).collect()).await;
        assert_eq!(status, Some(0), "{args:?}: {printed}");
    }
    let nats = crate::helpers::nats_url();
    let (status, printed) = vcintel(
        [
            "projections",
            "retry-dead-letters",
            "compnies",
            "--database-url",
            &env.database_url,
            "--nats-url",
            &nats,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect(),
    )
    .await;
    assert_eq!(status, Some(1), "{printed}");
    assert!(
        printed.contains("no consumer parks dead letters as `compnies`; known: companies"),
        "{printed}"
    );
}

#[tokio::test]
async fn events_tail_into_a_closed_pipe_ends_quietly_and_a_missing_start_fails_at_once() {
    let env = crate::helpers::TestEnv::new().await;
    let actor = env.actor(uuid::Uuid::now_v7(), vcintel_domain::Role::Member);
    // More than a pipe holds (64 KiB), so the writer meets the closed end.
    env.add_companies(actor, 0..300).await;
    // `vcintel events tail | head -n 1`, through a real pipe.
    let pipeline = format!(
        "'{}' events tail | head -n 1; echo \"status ${{PIPESTATUS[0]}}\"",
        env!("CARGO_BIN_EXE_vcintel")
    );
    let output = tokio::process::Command::new("bash")
        .args(["-c", &pipeline])
        .env("DATABASE_URL", &env.database_url)
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.ends_with("status 0\n"), "{stdout}{stderr}");
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");

    // Following from a position that does not exist fails instead of
    // waiting forever (the bound only keeps a regression from hanging).
    let tail = tokio::process::Command::new(env!("CARGO_BIN_EXE_vcintel"))
        .args(["events", "tail", "--follow", "--from", "999999"])
        .env("DATABASE_URL", &env.database_url)
        .env(
            "VCINTEL_PRIVACY_MASTER_KEY",
            crate::helpers::PRIVACY_MASTER_KEY,
        )
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), tail)
        .await
        .expect("it ends by itself")
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no event at position 999999"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
