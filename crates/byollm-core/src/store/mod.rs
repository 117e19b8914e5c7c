//! The store: SQLite (embedded default, in the data directory) or PostgreSQL
//! (`--store-url postgres://…`) behind sqlx's Any driver, with one set of
//! migrations and runtime queries, so a fresh clone builds without a database.
//!
//! Every tenant-owned query names the team, so one team cannot read or change
//! another's objects even when it guesses an id. Placeholders are `$N`, which both
//! engines accept.
//!
//! One module per table, each adding its queries to [`Store`]: `teams`,
//! `members` (with the removal of a member or an agent), `agents`, `api_keys`,
//! `runs`, `signing_keys`, `audit` and `usage` (with retention).

mod agents;
mod api_keys;
mod audit;
mod audit_events;
mod members;
mod rows;
mod runs;
mod signing_keys;
mod teams;
mod usage;

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row as _};

pub use audit_events::{AuditEventRow, AuditFilter};
pub use members::RemovedActor;
pub use rows::*;
pub use runs::ExpiredRun;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored document did not parse.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store URL is not SQLite or PostgreSQL.
    #[error("unsupported store URL; expected sqlite://PATH or postgres://…")]
    Url,
}

type Result<T> = std::result::Result<T, StoreError>;

/// Which engine the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The store handle; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

fn map_unique(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(what.to_owned())
        }
        _ => StoreError::Db(e),
    }
}

fn b(v: bool) -> i64 {
    i64::from(v)
}

impl Store {
    /// Opens (creating if needed) the SQLite store `byollm.db` in `data_dir`.
    pub async fn open_data_dir(data_dir: &Path) -> Result<Store> {
        let path = data_dir.join("byollm.db");
        Store::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Connects to `sqlite://…` or `postgres://…` and runs the migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Engine::Postgres
        } else {
            return Err(StoreError::Url);
        };
        let options = AnyConnectOptions::from_str(url)?;
        let mut pool = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        if engine == Engine::Sqlite {
            // WAL lets readers run beside the one writer; busy_timeout makes
            // concurrent writers (replicas' maintenance, the CLI) wait, not fail.
            pool = pool.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 10000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA synchronous = NORMAL")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        } else {
            pool = pool.max_connections(16);
        }
        let pool = pool.connect_with(options).await?;
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool, engine })
    }

    /// The engine in use.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Answers when the database does.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Reads a column, naming it on failure.
fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name).map_err(StoreError::Db)
}
