//! The store: SQLite (embedded default, in the data directory) or PostgreSQL
//! (`--store-url postgres://…`) behind sqlx's Any driver, with one set of
//! migrations and runtime queries, so a fresh clone builds without a database.
//!
//! Every tenant-owned query names the team, so one team cannot read or change
//! another's objects even when it guesses an id. Placeholders are `$N`, which both
//! engines accept.

mod rows;

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row as _};

use byollm_api::types::{ActorType, LlmSettings};

pub use rows::*;

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

    // ------------------------------------------------------------ teams

    /// Creates a team with default settings.
    pub async fn insert_team(&self, uid: &str, name: &str, now: i64) -> Result<()> {
        let settings = serde_json::to_string(&LlmSettings::default())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO teams (uid, name, llm_settings, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(uid)
        .bind(name)
        .bind(settings)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "team exists"))?;
        Ok(())
    }

    /// A team.
    pub async fn get_team(&self, uid: &str) -> Result<Option<TeamRow>> {
        let row = sqlx::query("SELECT uid, name, llm_settings FROM teams WHERE uid = $1")
            .bind(uid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| TeamRow::from_row(&r)).transpose()
    }

    /// Replaces a team's LLM settings.
    pub async fn put_settings(&self, team_uid: &str, settings: &LlmSettings) -> Result<()> {
        let text =
            serde_json::to_string(settings).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("UPDATE teams SET llm_settings = $1 WHERE uid = $2")
            .bind(text)
            .bind(team_uid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ------------------------------------------------------------ members

    /// Adds a member.
    pub async fn insert_member(&self, m: &MemberRow, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO members (uid, team_uid, email, role, aws_bedrock_opt_in, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&m.uid)
        .bind(&m.team_uid)
        .bind(&m.email)
        .bind(m.role.as_str())
        .bind(b(m.aws_bedrock_opt_in))
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "a member with this email already exists in the team"))?;
        Ok(())
    }

    /// A member of a team.
    pub async fn get_member(&self, team_uid: &str, uid: &str) -> Result<Option<MemberRow>> {
        let row = sqlx::query(
            "SELECT uid, team_uid, email, role, aws_bedrock_opt_in FROM members WHERE team_uid = $1 AND uid = $2",
        )
        .bind(team_uid)
        .bind(uid)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| MemberRow::from_row(&r)).transpose()
    }

    /// A team's members, oldest first.
    pub async fn list_members(&self, team_uid: &str) -> Result<Vec<MemberRow>> {
        let rows = sqlx::query(
            "SELECT uid, team_uid, email, role, aws_bedrock_opt_in FROM members WHERE team_uid = $1 \
             ORDER BY created_at, uid",
        )
        .bind(team_uid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(MemberRow::from_row).collect()
    }

    /// Removes a member, their API keys, and cancels the runs they act in;
    /// returns the hashes of the keys and run tokens that died, for the cache.
    pub async fn delete_member(
        &self,
        team_uid: &str,
        uid: &str,
        now: i64,
    ) -> Result<Option<Vec<String>>> {
        self.delete_actor(team_uid, ActorType::User, uid, now).await
    }

    /// Sets a member's Bedrock opt-in.
    pub async fn set_member_opt_in(&self, team_uid: &str, uid: &str, opt_in: bool) -> Result<()> {
        sqlx::query("UPDATE members SET aws_bedrock_opt_in = $1 WHERE team_uid = $2 AND uid = $3")
            .bind(b(opt_in))
            .bind(team_uid)
            .bind(uid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ------------------------------------------------------------ agents

    /// Adds a named agent.
    pub async fn insert_agent(&self, a: &AgentRow, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO agents (uid, team_uid, name, description, base_model, available, \
             inference_providers, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&a.agent.uid)
        .bind(&a.team_uid)
        .bind(&a.agent.name)
        .bind(&a.agent.description)
        .bind(a.agent.base_model.clone())
        .bind(b(a.agent.available))
        .bind(a.providers_json()?)
        .bind(now)
        .bind(&a.agent.created_by)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "an agent with this name already exists in the team"))?;
        Ok(())
    }

    /// A named agent of a team.
    pub async fn get_agent(&self, team_uid: &str, uid: &str) -> Result<Option<AgentRow>> {
        let row = sqlx::query(&format!("{AGENT_SELECT} WHERE team_uid = $1 AND uid = $2"))
            .bind(team_uid)
            .bind(uid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| AgentRow::from_row(&r)).transpose()
    }

    /// A team's named agents, oldest first.
    pub async fn list_agents(&self, team_uid: &str) -> Result<Vec<AgentRow>> {
        let rows = sqlx::query(&format!(
            "{AGENT_SELECT} WHERE team_uid = $1 ORDER BY created_at, uid"
        ))
        .bind(team_uid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AgentRow::from_row).collect()
    }

    /// Writes an agent's mutable fields.
    pub async fn update_agent(&self, a: &AgentRow) -> Result<()> {
        sqlx::query(
            "UPDATE agents SET name = $1, description = $2, base_model = $3, available = $4, \
             inference_providers = $5 WHERE team_uid = $6 AND uid = $7",
        )
        .bind(&a.agent.name)
        .bind(&a.agent.description)
        .bind(a.agent.base_model.clone())
        .bind(b(a.agent.available))
        .bind(a.providers_json()?)
        .bind(&a.team_uid)
        .bind(&a.agent.uid)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "an agent with this name already exists in the team"))?;
        Ok(())
    }

    /// Removes an agent and its keys and cancels its open runs; returns the hashes
    /// of the keys and run tokens that died, for the credential cache.
    pub async fn delete_agent(
        &self,
        team_uid: &str,
        uid: &str,
        now: i64,
    ) -> Result<Option<Vec<String>>> {
        self.delete_actor(team_uid, ActorType::ServiceAccount, uid, now)
            .await
    }

    /// Removes a member or an agent in one transaction: its API keys go, the runs
    /// it acts in are cancelled, and the hashes of every key and run token that
    /// died are returned; `None` when the actor did not exist in the team.
    async fn delete_actor(
        &self,
        team_uid: &str,
        actor: ActorType,
        uid: &str,
        now: i64,
    ) -> Result<Option<Vec<String>>> {
        let kind = actor.as_str();
        let table = match actor {
            ActorType::User => "members",
            ActorType::ServiceAccount => "agents",
        };
        let mut tx = self.pool.begin().await?;
        let mut hashes: Vec<String> = Vec::new();
        for sql in [
            "SELECT key_hash FROM api_keys WHERE team_uid = $1 AND owner_type = $2 AND owner_uid = $3",
            "SELECT token_hash FROM runs WHERE team_uid = $1 AND actor_type = $2 AND actor_uid = $3 \
             AND state IN ('queued', 'running')",
        ] {
            for r in sqlx::query(sql)
                .bind(team_uid)
                .bind(kind)
                .bind(uid)
                .fetch_all(&mut *tx)
                .await?
            {
                hashes.push(r.try_get::<String, _>(0)?);
            }
        }
        sqlx::query(
            "DELETE FROM api_keys WHERE team_uid = $1 AND owner_type = $2 AND owner_uid = $3",
        )
        .bind(team_uid)
        .bind(kind)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE runs SET state = 'cancelled', finished_at = $1 WHERE team_uid = $2 \
             AND actor_type = $3 AND actor_uid = $4 AND state IN ('queued', 'running')",
        )
        .bind(now)
        .bind(team_uid)
        .bind(kind)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(&format!(
            "DELETE FROM {table} WHERE team_uid = $1 AND uid = $2"
        ))
        .bind(team_uid)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((done.rows_affected() == 1).then_some(hashes))
    }

    // ------------------------------------------------------------ API keys

    /// Stores a key (its hash).
    pub async fn insert_api_key(&self, k: &ApiKeyRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, team_uid, owner_type, owner_uid, name, key_hash, prefix, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&k.id)
        .bind(&k.team_uid)
        .bind(k.owner_type.as_str())
        .bind(&k.owner_uid)
        .bind(&k.name)
        .bind(&k.key_hash)
        .bind(&k.prefix)
        .bind(k.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "key exists"))?;
        Ok(())
    }

    /// A team's keys, all of them or one owner's.
    pub async fn list_api_keys(&self, team_uid: &str) -> Result<Vec<ApiKeyRow>> {
        let rows = sqlx::query(&format!(
            "{KEY_SELECT} WHERE team_uid = $1 ORDER BY created_at, id"
        ))
        .bind(team_uid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ApiKeyRow::from_row).collect()
    }

    /// One key of a team.
    pub async fn get_api_key(&self, team_uid: &str, id: &str) -> Result<Option<ApiKeyRow>> {
        let row = sqlx::query(&format!("{KEY_SELECT} WHERE team_uid = $1 AND id = $2"))
            .bind(team_uid)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| ApiKeyRow::from_row(&r)).transpose()
    }

    /// Deletes a key.
    pub async fn delete_api_key(&self, team_uid: &str, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM api_keys WHERE team_uid = $1 AND id = $2")
            .bind(team_uid)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The key with this hash (authentication on a cache miss).
    pub async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRow>> {
        let row = sqlx::query(&format!("{KEY_SELECT} WHERE key_hash = $1"))
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| ApiKeyRow::from_row(&r)).transpose()
    }

    // ------------------------------------------------------------ runs

    /// Stores a new run.
    pub async fn insert_run(&self, r: &RunRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO runs (uid, team_uid, actor_type, actor_uid, triggered_by_type, triggered_by_uid, \
             state, model, prompt, token_hash, token_expires_at, created_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)",
        )
        .bind(&r.uid)
        .bind(&r.team_uid)
        .bind(r.actor.actor_type.as_str())
        .bind(&r.actor.uid)
        .bind(r.triggered_by.actor_type.as_str())
        .bind(&r.triggered_by.uid)
        .bind(r.state.as_str())
        .bind(r.model.clone())
        .bind(r.prompt.clone())
        .bind(&r.token_hash)
        .bind(r.token_expires_at)
        .bind(r.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| map_unique(e, "run exists"))?;
        Ok(())
    }

    /// A run of a team.
    pub async fn get_run(&self, team_uid: &str, uid: &str) -> Result<Option<RunRow>> {
        let row = sqlx::query(&format!("{RUN_SELECT} WHERE team_uid = $1 AND uid = $2"))
            .bind(team_uid)
            .bind(uid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| RunRow::from_row(&r)).transpose()
    }

    /// The run with this workload-token hash (authentication on a cache miss).
    pub async fn find_run_by_token(&self, token_hash: &str) -> Result<Option<RunRow>> {
        let row = sqlx::query(&format!("{RUN_SELECT} WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| RunRow::from_row(&r)).transpose()
    }

    /// Ends a run unless it already ended; true when this call ended it.
    pub async fn finish_run(
        &self,
        team_uid: &str,
        uid: &str,
        state: &str,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE runs SET state = $1, finished_at = $2 WHERE team_uid = $3 AND uid = $4 \
             AND state IN ('queued', 'running')",
        )
        .bind(state)
        .bind(now)
        .bind(team_uid)
        .bind(uid)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ------------------------------------------------------------ signing keys

    /// The keyring generation and every stored key, consistent with each other.
    pub async fn load_keys(&self) -> Result<(i64, Vec<KeyRow>)> {
        let generation = || async {
            let row = sqlx::query("SELECT generation FROM keyring WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
            row.try_get::<i64, _>(0).map_err(StoreError::Db)
        };
        loop {
            // Every key change bumps the generation in the same transaction, and
            // the generation only grows: reading it before and after the rows and
            // seeing the same value proves the rows belong to it (under READ
            // COMMITTED the two reads may otherwise straddle a commit).
            let before = generation().await?;
            let rows = sqlx::query(
                "SELECT kid, alg, state, private_key_sealed, created_at, activate_after, retired_at, verify_until \
                 FROM signing_keys ORDER BY created_at, kid",
            )
            .fetch_all(&self.pool)
            .await?;
            if generation().await? == before {
                let keys = rows.iter().map(KeyRow::from_row).collect::<Result<_>>()?;
                return Ok((before, keys));
            }
        }
    }

    /// Applies a key-lifecycle change if the keyring is still at `generation`
    /// (compare-and-swap); false when another writer got there first.
    pub async fn apply_key_change(&self, generation: i64, change: &KeyChange) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // The CAS is the transaction's first statement, so on SQLite it takes the
        // write lock before anything is read, and on PostgreSQL a racing updater
        // blocks on the row and then sees the new generation.
        let won = sqlx::query(
            "UPDATE keyring SET generation = generation + 1 WHERE id = 1 AND generation = $1",
        )
        .bind(generation)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !won {
            tx.rollback().await?;
            return Ok(false);
        }
        for k in &change.insert {
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, state, private_key_sealed, created_at, activate_after, \
                 retired_at, verify_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&k.kid)
            .bind(&k.alg)
            .bind(k.state.as_str())
            .bind(&k.private_key_sealed)
            .bind(k.created_at)
            .bind(k.activate_after)
            .bind(k.retired_at)
            .bind(k.verify_until)
            .execute(&mut *tx)
            .await?;
        }
        for (kid, state, retired_at, verify_until) in &change.update {
            sqlx::query("UPDATE signing_keys SET state = $1, retired_at = $2, verify_until = $3 WHERE kid = $4")
                .bind(state.as_str())
                .bind(*retired_at)
                .bind(*verify_until)
                .bind(kid)
                .execute(&mut *tx)
                .await?;
        }
        for kid in &change.remove {
            sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
                .bind(kid)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    // ------------------------------------------------------------ audit

    /// Records an issued token (never the token itself).
    pub async fn insert_audit(&self, a: &AuditRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO token_audit (jti, team_uid, sub, aud, kid, iat, exp, requested_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&a.jti)
        .bind(&a.team_uid)
        .bind(&a.sub)
        .bind(&a.aud)
        .bind(&a.kid)
        .bind(a.iat)
        .bind(a.exp)
        .bind(&a.requested_by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A team's audit rows, newest first.
    pub async fn list_audit(&self, team_uid: &str, limit: i64) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT jti, team_uid, sub, aud, kid, iat, exp, requested_by FROM token_audit \
             WHERE team_uid = $1 ORDER BY iat DESC, jti LIMIT $2",
        )
        .bind(team_uid)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(AuditRow::from_row).collect()
    }

    // ------------------------------------------------------------ usage

    /// Writes a batch of usage rows in one transaction.
    pub async fn insert_usage(&self, rows: &[UsageRow]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for u in rows {
            sqlx::query(
                "INSERT INTO usage_requests (id, team_uid, run_id, actor_type, actor_uid, member_uid, agent_uid, \
                 model, route, attempts, input_tokens, output_tokens, inference_microcredits, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(&u.id)
            .bind(&u.team_uid)
            .bind(u.run_id.clone())
            .bind(u.actor.actor_type.as_str())
            .bind(&u.actor.uid)
            .bind(u.member_uid.clone())
            .bind(u.agent_uid.clone())
            .bind(&u.model)
            .bind(&u.route)
            .bind(&u.attempts)
            .bind(u.input_tokens)
            .bind(u.output_tokens)
            .bind(u.inference_microcredits)
            .bind(u.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A team's usage rows matching `filter`, oldest first (at most `limit`).
    pub async fn list_usage(
        &self,
        team_uid: &str,
        filter: &UsageFilter,
        limit: i64,
    ) -> Result<Vec<UsageRow>> {
        let rows = sqlx::query(
            "SELECT id, team_uid, run_id, actor_type, actor_uid, member_uid, agent_uid, model, route, attempts, \
             input_tokens, output_tokens, inference_microcredits, created_at FROM usage_requests \
             WHERE team_uid = $1 AND ($2 IS NULL OR run_id = $2) AND ($3 IS NULL OR agent_uid = $3) \
             AND ($4 IS NULL OR member_uid = $4) ORDER BY created_at, id LIMIT $5",
        )
        .bind(team_uid)
        .bind(filter.run_id.clone())
        .bind(filter.agent_uid.clone())
        .bind(filter.member_uid.clone())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(UsageRow::from_row).collect()
    }

    /// A team's runs matching `filter` (agent = actor, member = triggering member).
    pub async fn list_runs(&self, team_uid: &str, filter: &UsageFilter) -> Result<Vec<RunRow>> {
        let rows = sqlx::query(&format!(
            "{RUN_SELECT} WHERE team_uid = $1 AND ($2 IS NULL OR uid = $2) \
             AND ($3 IS NULL OR (actor_type = 'service_account' AND actor_uid = $3)) \
             AND ($4 IS NULL OR (triggered_by_type = 'user' AND triggered_by_uid = $4)) ORDER BY created_at, uid"
        ))
        .bind(team_uid)
        .bind(filter.run_id.clone())
        .bind(filter.agent_uid.clone())
        .bind(filter.member_uid.clone())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(RunRow::from_row).collect()
    }

    /// Deletes finished runs, usage and audit rows older than `cutoff` (retention).
    pub async fn purge_before(&self, cutoff: i64) -> Result<u64> {
        let runs =
            sqlx::query("DELETE FROM runs WHERE finished_at IS NOT NULL AND finished_at < $1")
                .bind(cutoff)
                .execute(&self.pool)
                .await?
                .rows_affected();
        let audit = sqlx::query("DELETE FROM token_audit WHERE iat < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let usage = sqlx::query("DELETE FROM usage_requests WHERE created_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(runs + audit + usage)
    }
}

const AGENT_SELECT: &str = "SELECT uid, team_uid, name, description, base_model, available, \
     inference_providers, created_at, created_by FROM agents";
const KEY_SELECT: &str =
    "SELECT id, team_uid, owner_type, owner_uid, name, key_hash, prefix, created_at FROM api_keys";
const RUN_SELECT: &str = "SELECT uid, team_uid, actor_type, actor_uid, triggered_by_type, triggered_by_uid, \
     state, model, prompt, token_hash, token_expires_at, created_at, finished_at FROM runs";

/// Reads a column, naming it on failure.
fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name).map_err(StoreError::Db)
}
