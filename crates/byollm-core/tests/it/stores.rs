//! Test stores: a fresh SQLite file, and a fresh PostgreSQL database per test.

use byollm_core::store::Store;

/// The environment variable naming a PostgreSQL server for the store tests.
pub const PG_ENV: &str = "BYOLLM_TEST_POSTGRES_URL";

/// A store under test and what keeps it alive.
pub struct TestStore {
    pub store: Store,
    pub name: &'static str,
    /// The database's URL, for a test that changes it behind the store's back.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// Every engine available here: SQLite always, PostgreSQL when configured.
pub async fn all() -> Vec<TestStore> {
    let mut stores = vec![sqlite().await];
    match pg_url() {
        Some(url) => stores.push(postgres(&url).await),
        None => skipped(),
    }
    stores
}

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_data_dir(dir.path()).await.unwrap();
    TestStore {
        store,
        name: "sqlite",
        url: format!("sqlite://{}", dir.path().join("byollm.db").display()),
        _dir: Some(dir),
    }
}

fn pg_url() -> Option<String> {
    std::env::var(PG_ENV).ok().filter(|v| !v.is_empty())
}

fn skipped() {
    // In CI the PostgreSQL half of these tests is required, never skipped.
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{PG_ENV} is not set but CI=true: the PostgreSQL store tests must run in CI"
    );
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        eprintln!(
            "\n*** SKIPPED: PostgreSQL store tests: {PG_ENV} is not set. \
             CI sets it; locally run e.g. {PG_ENV}=postgres://postgres@127.0.0.1/postgres ***\n"
        );
    });
}

/// A new, empty database on the configured server, so tests run in parallel.
async fn postgres(admin_url: &str) -> TestStore {
    let url = empty_postgres(admin_url).await;
    let store = Store::connect(&url).await.unwrap();
    TestStore {
        store,
        name: "postgres",
        url,
        _dir: None,
    }
}

/// The URL of a new database without tables (no migrations run), on the
/// server `BYOLLM_TEST_POSTGRES_URL` names, when it is set.
pub async fn empty_postgres_url() -> Option<String> {
    match pg_url() {
        Some(admin_url) => Some(empty_postgres(&admin_url).await),
        None => {
            skipped();
            None
        }
    }
}

/// A fresh database on the server `BYOLLM_TEST_POSTGRES_URL` names (the same
/// server `admin_url` came from): the one helper every suite uses, which also
/// drops the databases of test processes that have exited.
async fn empty_postgres(admin_url: &str) -> String {
    debug_assert_eq!(pg_url().as_deref(), Some(admin_url));
    tokio::task::spawn_blocking(byollm_core::testing::fresh_postgres_database)
        .await
        .unwrap()
}
