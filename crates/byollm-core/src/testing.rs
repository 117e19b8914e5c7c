//! Which store the server and gateway test suites run on (test builds only,
//! feature `test-util`): `BYOLLM_TEST_STORE=postgres` runs them on a fresh
//! PostgreSQL database per test, created on the server that
//! `BYOLLM_TEST_POSTGRES_URL` names; unset or `sqlite`, on the data directory's
//! SQLite. CI runs each suite both ways.
//!
//! Invariant: every call returns a database no other test uses, so tests stay
//! parallel and independent on either store.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sqlx::Connection as _;

/// Names the store the suites run on: `sqlite` (default) or `postgres`.
pub const STORE_ENV: &str = "BYOLLM_TEST_STORE";
/// Names the PostgreSQL server (an admin URL; a database per test is made on it).
pub const POSTGRES_ENV: &str = "BYOLLM_TEST_POSTGRES_URL";

/// The engine the suites run on, from [`STORE_ENV`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestEngine {
    /// The data directory's SQLite file.
    Sqlite,
    /// A fresh PostgreSQL database per test.
    Postgres,
}

#[expect(
    clippy::disallowed_methods,
    reason = "test configuration comes from the environment, like CI's"
)]
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The engine [`STORE_ENV`] asks for.
///
/// # Panics
/// On a value other than `sqlite` or `postgres` (a typo must not silently run
/// the suite on SQLite).
#[expect(
    clippy::panic,
    reason = "test-only helper: a wrong setting fails the test"
)]
pub fn engine() -> TestEngine {
    match env(STORE_ENV).as_deref() {
        None | Some("sqlite") => TestEngine::Sqlite,
        Some("postgres") => TestEngine::Postgres,
        Some(other) => panic!("{STORE_ENV}={other}: expected sqlite or postgres"),
    }
}

/// Whether [`POSTGRES_ENV`] names a server.
pub fn postgres_configured() -> bool {
    env(POSTGRES_ENV).is_some()
}

/// Whether `test` may run, given that it needs `what`: true when `present`;
/// otherwise a loud SKIPPED line and false, or a failure when `CI=true` (CI
/// installs everything, so a missing tool there is a broken CI).
///
/// # Panics
/// When `what` is missing and `CI=true`.
#[expect(
    clippy::print_stderr,
    reason = "the skip must be seen in the test output"
)]
pub fn require(test: &str, what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    assert!(
        env("CI").as_deref() != Some("true"),
        "{what} is missing but CI=true: {test} must run in CI"
    );
    eprintln!("\n*** SKIPPED: {test}: {what} is missing ***\n");
    false
}

/// The `--store-url` for one test: `None` (SQLite in the data directory) or a
/// new PostgreSQL database's URL.
///
/// # Panics
/// When PostgreSQL is asked for and cannot be reached or [`POSTGRES_ENV`] is
/// not set.
pub fn store_url() -> Option<String> {
    match engine() {
        TestEngine::Sqlite => None,
        TestEngine::Postgres => Some(fresh_postgres_database()),
    }
}

/// A new, empty database on the [`POSTGRES_ENV`] server; its URL.
///
/// Synchronous (callers build configs outside async code too): the database is
/// made on a thread of its own with its own runtime.
///
/// # Panics
/// When [`POSTGRES_ENV`] is not set or the server refuses.
#[expect(
    clippy::panic,
    clippy::expect_used,
    reason = "test-only helper: a missing database fails the test"
)]
pub fn fresh_postgres_database() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    static SWEPT: AtomicBool = AtomicBool::new(false);
    let admin = env(POSTGRES_ENV).unwrap_or_else(|| {
        panic!("{STORE_ENV}=postgres needs {POSTGRES_ENV} (e.g. postgres://postgres:postgres@127.0.0.1:5432/postgres)")
    });
    let db = format!(
        "byollm_it_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let (base, _) = admin
        .rsplit_once('/')
        .expect("the PostgreSQL URL ends in a database name");
    let url = format!("{base}/{db}");
    let statements = [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
    ];
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&admin)
                .await
                .expect("connect to the test PostgreSQL server");
            if !SWEPT.swap(true, Ordering::SeqCst) {
                drop_orphans(&mut conn).await;
            }
            for s in &statements {
                sqlx::query(s)
                    .execute(&mut conn)
                    .await
                    .expect("create the test database");
            }
        });
    })
    .join()
    .expect("the database thread");
    url
}

/// The prefixes of the databases [`fresh_postgres_database`] makes; the second
/// `_`-separated field after the prefix is the making process's id.
const TEST_DATABASE_PREFIXES: [&str; 2] = ["byollm_it_", "byollm_test_"];

/// Drops the test databases whose making process has exited.
///
/// A test process cannot drop its databases when it ends (its tests may still
/// hold connections until the last moment), so each process sweeps those of
/// processes that are gone before it makes its first one: the server keeps only
/// the running suites' databases instead of growing by a few hundred per run.
/// Failures are ignored: a database still in use is left for the next sweep.
pub async fn drop_orphans(conn: &mut sqlx::AnyConnection) {
    let Ok(rows) = sqlx::query("SELECT datname FROM pg_database")
        .fetch_all(&mut *conn)
        .await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = sqlx::Row::try_get::<String, _>(&row, 0) else {
            continue;
        };
        if orphaned(&name) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *conn)
                .await;
        }
    }
}

/// Whether `name` is a test database whose making process no longer runs.
fn orphaned(name: &str) -> bool {
    let Some(rest) = TEST_DATABASE_PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p))
    else {
        return false;
    };
    let Some(pid) = rest.split('_').next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::orphaned;

    #[test]
    fn only_test_databases_of_gone_processes_are_orphans() {
        // u32::MAX is above any Linux pid limit, so no such process runs.
        assert!(orphaned(&format!("byollm_it_{}_3", u32::MAX)));
        assert!(orphaned(&format!("byollm_test_{}_0", u32::MAX)));
        assert!(!orphaned(&format!("byollm_it_{}_3", std::process::id())));
        assert!(!orphaned("byollm_it_1_3"), "pid 1 always runs");
        assert!(!orphaned(&format!("production_{}_1", u32::MAX)));
        assert!(!orphaned("byollm_it_notapid_1"));
        assert!(!orphaned("postgres"));
    }
}
