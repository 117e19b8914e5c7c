//! The store: SQLite (embedded default, in the data directory) or PostgreSQL
//! (`--store-url postgres://…`) behind sqlx's Any driver, with one set of
//! migrations and runtime queries, so a fresh clone builds without a database.
//!
//! The embedded database holds emails and run prompts: its data directory is
//! created 0700 and `byollm.db` 0600 (SQLite gives its WAL and shared-memory
//! files the database's mode), and an existing database readable by others is
//! narrowed to 0600 when opened.
//!
//! Every tenant-owned query names the team, so one team cannot read or change
//! another's objects even when it guesses an id. Placeholders are `$N`, which both
//! engines accept.
//!
//! One module per table, each adding its queries to [`Store`]: `teams`,
//! `members` (with the removal of a member or an agent and the owner rule),
//! `invitations`, `agents`, `api_keys`, `runs`, `signing_keys`, `audit`,
//! `console_sessions` and `usage` (with retention); `notify` announces the writes other replicas must
//! hear of (PostgreSQL only).

mod agents;
mod api_keys;
mod audit;
mod audit_events;
mod console_sessions;
mod invitations;
mod member_settings;
mod members;
pub mod notify;
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

pub use agents::AgentFilter;
pub use api_keys::{KeyAfter, LAST_USE_GRANULARITY};
pub use audit_events::{AuditEventRow, AuditFilter};
pub use console_sessions::{ConsoleSessionRow, SignInLinkRow};
pub use invitations::InvitationRow;
pub use members::{LAST_OWNER, MemberAfter, ROLE_CHANGED, RemovedActor};
pub use rows::*;
pub use runs::{ExpiredRun, RunFilter};
pub use usage::{COMMITS_PER_CHECKPOINT, Direct};

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
    /// The data directory or database file could not be created owner-only.
    #[error("could not create the store's files: {0}")]
    Files(String),
    /// The store URL is not SQLite or PostgreSQL.
    #[error("unsupported store URL; expected sqlite://PATH or postgres://…")]
    Url,
    /// The usage ledger's own SQLite connection failed.
    #[error("database error: {0}")]
    Direct(String),
    /// A write shared with other requests (group commit) failed; `unavailable`
    /// when the database could not be reached (see [`StoreError::is_unavailable`]).
    #[error("database error: {message}")]
    Batch {
        /// Whether the database was unreachable.
        unavailable: bool,
        /// The failure, as the commit saw it.
        message: String,
    },
}

type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// Whether the database could not be reached (connection refused or lost,
    /// no connection free within the pool's wait, the server shutting down or
    /// starting up), as opposed to a statement it refused: a transient state
    /// the caller may retry after.
    pub fn is_unavailable(&self) -> bool {
        let e = match self {
            StoreError::Db(e) => e,
            StoreError::Batch { unavailable, .. } => return *unavailable,
            _ => return false,
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // SQLSTATE class 08 (connection exception) and 57P01–57P03
            // (admin or crash shutdown, cannot connect now).
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
            _ => false,
        }
    }
}

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
    /// The PostgreSQL URL, for the change listener's own connection
    /// ([`notify::ChangeListener`]); secret because it may hold a password.
    listen_url: Option<std::sync::Arc<secrecy::SecretString>>,
    /// A random id per handle, carried by its change notifications.
    origin: std::sync::Arc<str>,
    /// Token audit rows waiting for, or in, a shared commit.
    audit: std::sync::Arc<audit::AuditBatch>,
    /// See [`Store::write_turn`].
    write_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The SQLite database file (`None` on PostgreSQL).
    sqlite_path: Option<std::sync::Arc<std::path::PathBuf>>,
    /// See [`Store::insert_usage_now`].
    direct: std::sync::Arc<usage::DirectWriter>,
}

/// Longest a statement waits for a PostgreSQL connection (a free one, or a new
/// one while the server is unreachable) before failing as unavailable.
pub const POSTGRES_ACQUIRE_WAIT: Duration = Duration::from_secs(3);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

fn map_unique(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(what.to_owned())
        }
        _ => StoreError::Db(e),
    }
}

/// Appends `rows` parenthesised tuples of `cols` parameters to a multi-row
/// `INSERT … VALUES `. On SQLite the parameters are anonymous (`?`, bound in
/// order, as the arguments are): sqlx maps each numbered one (`$N`) to its
/// argument by asking SQLite for its name, a linear search per parameter, so
/// a 64-row statement's ~900 `$N`s cost ~400,000 comparisons per commit (3%
/// of the server's CPU under load). PostgreSQL takes `$N`.
fn push_value_rows(sql: &mut String, rows: usize, cols: usize, engine: Engine) {
    use std::fmt::Write as _;
    for r in 0..rows {
        sql.push_str(if r > 0 { ", (" } else { "(" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            match engine {
                Engine::Sqlite => sql.push('?'),
                Engine::Postgres => {
                    let _ = write!(sql, "${}", r * cols + c + 1);
                }
            }
        }
        sql.push(')');
    }
}

fn b(v: bool) -> i64 {
    i64::from(v)
}

impl Store {
    /// Begins a transaction that writes. On SQLite it is `BEGIN IMMEDIATE`:
    /// a deferred transaction that reads first and then writes cannot wait
    /// for another connection's write lock (SQLite answers `SQLITE_BUSY` at
    /// once, without the busy handler, since waiting could deadlock), so
    /// two concurrent writes failed with "database is locked"; taking the
    /// write lock at `BEGIN` waits for it under `busy_timeout` instead.
    /// PostgreSQL's default is right as it is.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.engine {
            Engine::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Engine::Postgres => self.pool.begin().await?,
        })
    }

    /// Opens (creating if needed, owner-only) the SQLite store `byollm.db` in
    /// `data_dir`.
    pub async fn open_data_dir(data_dir: &Path) -> Result<Store> {
        let path = data_dir.join("byollm.db");
        create_private(data_dir, &path)
            .map_err(|e| StoreError::Files(format!("{}: {e}", path.display())))?;
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
            // No ping before each use: a file does not drop connections, and
            // the ping was one more round trip to the connection's thread on
            // every query (the usage row's commit among them).
            pool = pool
                .max_connections(8)
                .test_before_acquire(false)
                .after_connect(|conn, _| {
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
            // While PostgreSQL is down, sqlx retries the connection until this
            // wait runs out: it bounds how long a request (or /readyz) hangs
            // before answering 503.
            pool = pool
                .max_connections(16)
                .acquire_timeout(POSTGRES_ACQUIRE_WAIT);
        }
        let pool = pool.connect_with(options).await?;
        MIGRATOR.run(&pool).await?;
        let listen_url = (engine == Engine::Postgres)
            .then(|| std::sync::Arc::new(secrecy::SecretString::from(url.to_owned())));
        Ok(Store {
            pool,
            engine,
            listen_url,
            origin: crate::ids::new_id("origin").into(),
            audit: std::sync::Arc::default(),
            write_turn: std::sync::Arc::default(),
            sqlite_path: (engine == Engine::Sqlite)
                .then(|| sqlite_file(url))
                .flatten()
                .map(std::sync::Arc::new),
            direct: std::sync::Arc::default(),
        })
    }

    /// Held by each of the hot writers (usage rows, token audit rows) while it
    /// commits, so that they take turns here instead of in SQLite, whose busy
    /// handler makes a second writer sleep milliseconds at a time.
    pub fn write_turn(&self) -> &std::sync::Arc<tokio::sync::Mutex<()>> {
        &self.write_turn
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

/// The file of a `sqlite://PATH[?…]` or `sqlite:PATH[?…]` URL; `None` for an
/// in-memory database (which another connection could not see).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let memory =
        path.is_empty() || path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory");
    (!memory).then(|| std::path::PathBuf::from(path))
}

/// Creates `dir` (0700) and an empty database file `db` (0600) unless they
/// exist, and narrows an existing database file to 0600.
fn create_private(dir: &Path, db: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(db) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(db)?.permissions().mode();
                if mode & 0o077 != 0 {
                    std::fs::set_permissions(db, std::fs::Permissions::from_mode(0o600))?;
                }
            }
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Reads a column, naming it on failure.
fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name).map_err(StoreError::Db)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite gets anonymous parameters (no name lookup per parameter);
    /// PostgreSQL numbers them across the rows.
    #[test]
    fn value_rows_are_anonymous_on_sqlite_and_numbered_on_postgres() {
        let mut lite = String::new();
        push_value_rows(&mut lite, 2, 3, Engine::Sqlite);
        assert_eq!(lite, "(?, ?, ?), (?, ?, ?)");
        let mut pg = String::new();
        push_value_rows(&mut pg, 2, 3, Engine::Postgres);
        assert_eq!(pg, "($1, $2, $3), ($4, $5, $6)");
    }
}
