-- The admin audit trail: one row per administrative change (settings, members,
-- API keys, agents, runs). Who (actor type and uid, and a fingerprint of the
-- credential used: never the credential), what (action, target), when, the
-- request id, and the changed fields as JSON (secrets never included).
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    team_uid TEXT NOT NULL,
    at BIGINT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_uid TEXT NOT NULL,
    credential TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    request_id TEXT,
    changes TEXT NOT NULL
);
CREATE INDEX audit_events_team ON audit_events (team_uid, at, id);
