//! Migration 0004 on a store that already holds rows its new uniqueness rules
//! would refuse (agent names and emails that differ only in case or outer
//! spaces): it runs, keeps every row, and refuses new near-duplicates.

use std::path::Path;

use byollm_core::store::{Store, StoreError};
use sqlx::Executor as _;

use crate::stores;

/// Runs the migrations before 0004 on `url` (copied to a directory of their
/// own, so the checksums match the real ones).
async fn migrate_before_0004(url: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.as_str() < "0004" {
            std::fs::copy(entry.path(), dir.path().join(&name)).unwrap();
        }
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::migrate::Migrator::new(dir.path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let rows = [
        "INSERT INTO teams (uid, name, llm_settings, created_at) VALUES ('t1', 'T', '{}', 1)",
        "INSERT INTO agents (uid, team_uid, name, description, base_model, available, \
         inference_providers, created_at, created_by) VALUES \
         ('a1', 't1', 'Bot', '', NULL, 1, '{}', 1, 'u1'), \
         ('a2', 't1', 'bot ', '', NULL, 1, '{}', 2, 'u1'), \
         ('a3', 't1', 'other', '', NULL, 1, '{}', 3, 'u1')",
        "INSERT INTO members (uid, team_uid, email, role, aws_bedrock_opt_in, created_at) VALUES \
         ('u1', 't1', 'Ada@Example.com', 'owner', 0, 1), \
         ('u2', 't1', 'ada@example.com', 'member', 0, 2)",
    ];
    for sql in rows {
        pool.execute(sql).await.unwrap();
    }
    pool.close().await;
}

async fn check(url: &str, engine: &str) {
    migrate_before_0004(url).await;
    let store = Store::connect(url).await.unwrap();
    let agents = store.list_agents("t1").await.unwrap();
    assert_eq!(agents.len(), 3, "{engine}: a row was lost");
    let members = store.list_members("t1").await.unwrap();
    assert_eq!(members.len(), 2, "{engine}: a row was lost");
    // New near-duplicates are refused.
    let mut again = agents[2].clone();
    again.agent.uid = "a4".into();
    again.agent.name = "OTHER".into();
    assert!(
        matches!(
            store.insert_agent(&again, 4, None).await,
            Err(StoreError::Conflict(_))
        ),
        "{engine}"
    );
    let mut twin = members[1].clone();
    twin.uid = "u3".into();
    twin.email = "ADA@example.com".into();
    assert!(
        matches!(
            store.insert_member(&twin, 3, None).await,
            Err(StoreError::Conflict(_))
        ),
        "{engine}"
    );
}

#[tokio::test]
async fn migration_0004_keeps_existing_near_duplicates_and_refuses_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    check(&url, "sqlite").await;
    if let Some(url) = stores::empty_postgres_url().await {
        check(&url, "postgres").await;
    }
}
