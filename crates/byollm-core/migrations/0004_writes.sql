-- Safe writes (issue 11 items 3 and 5).
--
-- `version` columns: every read-modify-write of an agent, a team's LLM settings
-- or a member's own settings is a compare-and-swap on its version (the same SQL
-- on SQLite and PostgreSQL), and the version is the resource's ETag.
--
-- Agent names are unique per team case-insensitively: `name_key` is the
-- lower-cased, trimmed, NFC name the service computes. Email addresses are
-- unique per team case-insensitively (lower(email)). Rows that already collide
-- under the new rules keep working: the oldest keeps the plain key, each later
-- one is marked (a key suffixed with its uid, or email_legacy_dup = 1), so the
-- migration never fails on existing data and never renames anything.

ALTER TABLE agents ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
UPDATE agents SET name_key = lower(trim(name)) || CASE WHEN EXISTS (
    SELECT 1 FROM agents a2
    WHERE a2.team_uid = agents.team_uid
      AND lower(trim(a2.name)) = lower(trim(agents.name))
      AND (a2.created_at < agents.created_at
           OR (a2.created_at = agents.created_at AND a2.uid < agents.uid))
) THEN ' #legacy-duplicate ' || uid ELSE '' END;
CREATE UNIQUE INDEX agents_name_key ON agents (team_uid, name_key);
CREATE INDEX agents_team_order ON agents (team_uid, created_at, uid);

ALTER TABLE teams ADD COLUMN settings_version BIGINT NOT NULL DEFAULT 0;

ALTER TABLE members ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE members ADD COLUMN email_legacy_dup BIGINT NOT NULL DEFAULT 0;
UPDATE members SET email_legacy_dup = 1 WHERE EXISTS (
    SELECT 1 FROM members m2
    WHERE m2.team_uid = members.team_uid
      AND lower(m2.email) = lower(members.email)
      AND (m2.created_at < members.created_at
           OR (m2.created_at = members.created_at AND m2.uid < members.uid))
);
CREATE UNIQUE INDEX members_email_ci ON members (team_uid, lower(email))
    WHERE email_legacy_dup = 0;

CREATE INDEX runs_team_uid ON runs (team_uid, created_at, uid);
