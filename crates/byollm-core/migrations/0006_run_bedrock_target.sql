-- The Bedrock target (role and region) a run was given when it started, so a
-- finished run still says where its inference went (`runs get` showed
-- `bedrock: none` once a run ended). Both NULL: the run had no Bedrock target
-- (Bedrock off, not opted in, or unconfigured), or it predates this column.
ALTER TABLE runs ADD COLUMN bedrock_role_arn TEXT;
ALTER TABLE runs ADD COLUMN bedrock_region TEXT;
