-- One schema for SQLite and PostgreSQL: TEXT, BIGINT (booleans as 0/1, times as
-- Unix seconds), no engine-specific types. Secrets appear only as SHA-256 hashes
-- (api_keys.key_hash, runs.token_hash) or sealed under the KEK
-- (signing_keys.private_key_sealed).

CREATE TABLE teams (
    uid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    llm_settings TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE members (
    uid TEXT PRIMARY KEY,
    team_uid TEXT NOT NULL REFERENCES teams (uid),
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    aws_bedrock_opt_in BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (team_uid, email)
);

CREATE TABLE agents (
    uid TEXT PRIMARY KEY,
    team_uid TEXT NOT NULL REFERENCES teams (uid),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    base_model TEXT,
    available BIGINT NOT NULL,
    inference_providers TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (team_uid, name)
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    team_uid TEXT NOT NULL REFERENCES teams (uid),
    owner_type TEXT NOT NULL,
    owner_uid TEXT NOT NULL,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_owner ON api_keys (team_uid, owner_uid);

CREATE TABLE runs (
    uid TEXT PRIMARY KEY,
    team_uid TEXT NOT NULL REFERENCES teams (uid),
    actor_type TEXT NOT NULL,
    actor_uid TEXT NOT NULL,
    triggered_by_type TEXT NOT NULL,
    triggered_by_uid TEXT NOT NULL,
    state TEXT NOT NULL,
    model TEXT,
    prompt TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    token_expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX runs_team ON runs (team_uid, created_at);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    state TEXT NOT NULL,
    private_key_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    activate_after BIGINT NOT NULL,
    retired_at BIGINT,
    verify_until BIGINT
);

-- A single row whose generation every key-lifecycle change bumps with a
-- compare-and-swap, so two replicas (or two `keys rotate`) cannot both win.
CREATE TABLE keyring (
    id BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO keyring (id, generation) VALUES (1, 0);

CREATE TABLE token_audit (
    jti TEXT PRIMARY KEY,
    team_uid TEXT NOT NULL,
    sub TEXT NOT NULL,
    aud TEXT NOT NULL,
    kid TEXT NOT NULL,
    iat BIGINT NOT NULL,
    exp BIGINT NOT NULL,
    requested_by TEXT NOT NULL
);
CREATE INDEX token_audit_team ON token_audit (team_uid, iat);
