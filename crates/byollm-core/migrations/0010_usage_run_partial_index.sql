-- Only an agent run's usage rows carry a run id; an interactive request's
-- row has none and never needs this index. Indexing only the rows that have
-- one spares every interactive request's commit one B-tree page (a quarter
-- of its writes to the log: ~8 µs of ~35 µs per lone commit, measured on
-- SQLite). A query by run (`run_id = ...`, which implies NOT NULL) uses it,
-- on SQLite and PostgreSQL alike, and with `created_at, id` in it a run's
-- usage is listed in page order without a sort (before, SQLite listed a run
-- by scanning the team's rows).
DROP INDEX usage_run;
CREATE INDEX usage_run ON usage_requests (team_uid, run_id, created_at, id) WHERE run_id IS NOT NULL;
