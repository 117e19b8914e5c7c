-- Web console sessions (issue 16). A session is a random cookie the browser
-- holds; the store keeps only its SHA-256 (`id_hash`), the SHA-256 of the API
-- key it was opened with (`key_hash`, the same value as api_keys.key_hash, so a
-- revoked key ends every session opened with it) and when it ends (12 hours
-- after sign-in). Never the key, never the cookie.
CREATE TABLE console_sessions (
    id_hash TEXT PRIMARY KEY,
    team_uid TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_key ON console_sessions (key_hash);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
