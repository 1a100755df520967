//! Crypto-shredding's key store on real Postgres: one data key per subject
//! however many writers ask at once, erasure that leaves sealed values
//! unreadable and refuses new ones, and a master-key rotation that
//! re-wraps every key without touching what was sealed.

use crate::helpers::TestEnv;
use base64::Engine as _;
use vcintel_infra::privacy::{self, KeyError, KeyRing, MasterKey};

fn master(version: i32, byte: u8) -> MasterKey {
    MasterKey::from_base64(
        version,
        &base64::engine::general_purpose::STANDARD.encode([byte; 32]),
    )
    .unwrap()
}

#[tokio::test]
async fn one_key_per_subject_erasure_shreds_it_and_rotation_rewraps_every_key() {
    let env = TestEnv::new().await;
    let ring = KeyRing::new(master(1, 1), vec![]);

    // Ten writers at once get one key.
    let keys = futures::future::join_all(
        (0..10).map(|_| privacy::sealing_key(&env.pool, &ring, "user:ada", None)),
    )
    .await;
    let ids: std::collections::HashSet<_> = keys.into_iter().map(|k| k.unwrap().id).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let ada = privacy::sealing_key(&env.pool, &ring, "user:ada", None)
        .await
        .unwrap();
    let sealed = ada.seal("user:ada", b"ada@example.com");
    let bob = privacy::sealing_key(&env.pool, &ring, "user:bob", None)
        .await
        .unwrap();
    let bobs = bob.seal("user:bob", b"Bob Smith");
    // Nothing personal in the key table: wrapped keys only.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("select wrapped from privacy_keys")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);

    // Rotation: version 2 becomes current; version 1 only unwraps.
    let rotated = KeyRing::new(master(2, 2), vec![master(1, 1)]);
    let counted = std::sync::Mutex::new(Vec::new());
    let rewrapped = privacy::rotate(&env.pool, &rotated, &|n| counted.lock().unwrap().push(n))
        .await
        .unwrap();
    assert_eq!(rewrapped, 2);
    assert_eq!(counted.into_inner().unwrap().last(), Some(&2));
    let only_new = KeyRing::new(master(2, 2), vec![]);
    let reread = privacy::reading_key(&env.pool, &only_new, "user:ada")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reread.open(&sealed).unwrap(), b"ada@example.com");
    assert!(matches!(
        privacy::reading_key(&env.pool, &ring, "user:ada").await,
        Err(KeyError::UnknownMasterVersion { version: 2, .. })
    ));
    assert_eq!(
        privacy::rotate(&env.pool, &rotated, &|_| {}).await.unwrap(),
        0,
        "nothing left to re-wrap"
    );

    // Erasure: the key is gone, what was sealed cannot be read, and
    // nothing new can be sealed for the subject.
    let mut tx = env.pool.begin().await.unwrap();
    assert!(privacy::shred(&mut tx, "user:ada").await.unwrap());
    tx.commit().await.unwrap();
    assert!(privacy::reading_key(&env.pool, &only_new, "user:ada")
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        privacy::sealing_key(&env.pool, &only_new, "user:ada", None).await,
        Err(KeyError::Erased(_))
    ));
    let erased: Vec<String> = sqlx::query_scalar("select subject from privacy_erasures")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(erased, ["user:ada"]);
    // Others are untouched.
    let bob = privacy::reading_key(&env.pool, &only_new, "user:bob")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.open(&bobs).unwrap(), b"Bob Smith");
}

/// `vcintel privacy rotate-master-key` re-wraps under the key the
/// environment names, and a malformed key is refused without being echoed.
#[tokio::test]
async fn the_rotation_command_rewraps_and_never_prints_a_key() {
    let env = TestEnv::new().await;
    let old = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
    let new = base64::engine::general_purpose::STANDARD.encode([2u8; 32]);
    let ring = KeyRing::new(master(1, 1), vec![]);
    for subject in ["user:a", "user:b", "user:c"] {
        privacy::sealing_key(&env.pool, &ring, subject, None)
            .await
            .unwrap();
    }
    let run = |key: &str, version: &str, previous: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_vcintel"))
            .env(
                "VCINTEL_PRIVACY_MASTER_KEY",
                crate::helpers::PRIVACY_MASTER_KEY,
            )
            .args(["privacy", "rotate-master-key"])
            .env("DATABASE_URL", &env.database_url)
            .env("VCINTEL_PRIVACY_MASTER_KEY", key)
            .env("VCINTEL_PRIVACY_MASTER_KEY_VERSION", version)
            .env("VCINTEL_PRIVACY_PREVIOUS_MASTER_KEYS", previous)
            .output()
    };
    let rotated = run(&new, "2", &format!("1:{old}")).await.unwrap();
    let out = String::from_utf8_lossy(&rotated.stdout);
    assert!(
        rotated.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(
        out.contains("3 data key(s) re-wrapped under master key version 2"),
        "{out}"
    );
    let versions: Vec<i32> = sqlx::query_scalar("select distinct master_version from privacy_keys")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(versions, [2]);

    let refused = run("c2hvcnQta2V5", "3", "").await.unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(err.contains("VCINTEL_PRIVACY_MASTER_KEY"), "{err}");
    assert!(
        !err.contains("c2hvcnQta2V5"),
        "the key is not echoed: {err}"
    );
}

/// A restore of a backup older than an erasure erases the person again
/// when given a newer backup's record of erasures.
#[tokio::test]
async fn a_restore_from_an_older_backup_reapplies_later_erasures() {
    let env = TestEnv::new().await;
    let ring = KeyRing::new(master(1, 1), vec![]);
    for subject in ["user:ada", "user:bob"] {
        privacy::sealing_key(&env.pool, &ring, subject, None)
            .await
            .unwrap();
    }
    let vcintel = |database_url: String, args: Vec<String>| async move {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_vcintel"))
            .env(
                "VCINTEL_PRIVACY_MASTER_KEY",
                crate::helpers::PRIVACY_MASTER_KEY,
            )
            .args(&args)
            .env("DATABASE_URL", database_url)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let older = std::env::temp_dir().join(format!("{}-older", env.prefix));
    let newer = std::env::temp_dir().join(format!("{}-newer", env.prefix));
    let path = |p: &std::path::Path| p.display().to_string();
    vcintel(
        env.database_url.clone(),
        vec![
            "backup".into(),
            "create".into(),
            "--output".into(),
            path(&older),
        ],
    )
    .await;
    let mut tx = env.pool.begin().await.unwrap();
    privacy::shred(&mut tx, "user:ada").await.unwrap();
    tx.commit().await.unwrap();
    vcintel(
        env.database_url.clone(),
        vec![
            "backup".into(),
            "create".into(),
            "--output".into(),
            path(&newer),
        ],
    )
    .await;

    let target_name = format!("{}_older", env.prefix);
    let admin = sqlx::PgPool::connect(&crate::helpers::admin_database_url())
        .await
        .unwrap();
    sqlx::query(&format!("create database {target_name}"))
        .execute(&admin)
        .await
        .unwrap();
    let target = crate::helpers::url_with_database(&env.database_url, &target_name);
    let out = vcintel(
        target.clone(),
        vec![
            "backup".into(),
            "restore".into(),
            path(&older),
            "--skip-rebuild".into(),
            "--erasures-from".into(),
            path(&newer),
        ],
    )
    .await;
    assert!(
        out.contains("1 subject(s) erased since, 1 key(s) deleted"),
        "{out}"
    );
    let restored = sqlx::PgPool::connect(&target).await.unwrap();
    let keys: Vec<String> = sqlx::query_scalar("select subject from privacy_keys")
        .fetch_all(&restored)
        .await
        .unwrap();
    assert_eq!(
        keys,
        ["user:bob"],
        "Ada's key, in the older backup, is gone again"
    );
    let erased: Vec<String> = sqlx::query_scalar("select subject from privacy_erasures")
        .fetch_all(&restored)
        .await
        .unwrap();
    assert_eq!(erased, ["user:ada"]);
    restored.close().await;
    for dir in [older, newer] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A rotation that had to skip a key (locked by another rotation) says so
/// instead of reporting success: the old master key must be kept.
#[tokio::test]
async fn a_rotation_that_skipped_a_key_is_not_reported_done() {
    let env = TestEnv::new().await;
    let ring = KeyRing::new(master(1, 1), vec![]);
    for subject in ["user:held", "user:free"] {
        privacy::sealing_key(&env.pool, &ring, subject, None)
            .await
            .unwrap();
    }
    let rotated = KeyRing::new(master(2, 2), vec![master(1, 1)]);
    let mut holder = env.pool.begin().await.unwrap();
    sqlx::query("select 1 from privacy_keys where subject = 'user:held' for update")
        .execute(&mut *holder)
        .await
        .unwrap();
    let skipped = privacy::rotate(&env.pool, &rotated, &|_| {}).await;
    assert!(
        matches!(skipped, Err(KeyError::RotationIncomplete(1))),
        "{skipped:?}"
    );
    holder.commit().await.unwrap();
    assert_eq!(
        privacy::rotate(&env.pool, &rotated, &|_| {}).await.unwrap(),
        1
    );
}
