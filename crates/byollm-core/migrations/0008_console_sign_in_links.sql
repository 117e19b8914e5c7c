-- One-time console sign-in links (issue 16): `byollm admin login-link` mints a
-- random token for one member; the store keeps only its SHA-256. A link is
-- good for 10 minutes and once (`used_at` is set by the sign-in that spends
-- it). A session opened with a link has no API key: `member_uid` names the
-- member it acts as (NULL for a key session) and `key_hash` holds the link's
-- hash (it matches no API key, so key revocation never finds it).
CREATE TABLE console_sign_in_links (
    token_hash TEXT PRIMARY KEY,
    team_uid TEXT NOT NULL,
    member_uid TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX console_sign_in_links_expiry ON console_sign_in_links (expires_at);
ALTER TABLE console_sessions ADD COLUMN member_uid TEXT;
