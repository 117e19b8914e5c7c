-- Onboarding (issue 11): one-time invitation codes, API key expiry and coarse
-- last use. Invitation codes are stored only as SHA-256 hashes, like API keys.

-- At most one live invitation per member: re-issuing replaces the row (the old
-- code dies), redeeming or revoking deletes it.
CREATE TABLE invitations (
    member_uid TEXT PRIMARY KEY,
    team_uid TEXT NOT NULL REFERENCES teams (uid),
    code_hash TEXT NOT NULL UNIQUE,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX invitations_team ON invitations (team_uid);

-- Unix seconds; NULL: never expires / never used.
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
