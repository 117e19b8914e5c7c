-- One row per inference request through the gateway: who, which model, which
-- route, the attempts made, token counts and inference credits. No prompt or
-- completion text is ever stored. Credits are micro-credits (1e-6) as integers.
CREATE TABLE usage_requests (
    id TEXT PRIMARY KEY,
    team_uid TEXT NOT NULL,
    run_id TEXT,
    actor_type TEXT NOT NULL,
    actor_uid TEXT NOT NULL,
    member_uid TEXT,
    agent_uid TEXT,
    model TEXT NOT NULL,
    route TEXT NOT NULL,
    attempts TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    inference_microcredits BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX usage_team ON usage_requests (team_uid, created_at);
CREATE INDEX usage_run ON usage_requests (team_uid, run_id);
