-- Signed changes to checkout_session_rollup not folded into it yet. The rollup's statement triggers
-- (sql/functions/checkout_session_rollup.sql) append here instead of upserting the rollup: no unique key,
-- so concurrent writers never lock a common row (every completion of a session created in the same hour
-- used to update, and hold until commit, the same few rollup rows). fold_checkout_session_rollup() moves
-- the rows into the rollup in one short transaction (the `rollup` job every 5 minutes, and `expire` after
-- its batches); readers see both through the view checkout_session_rollup_current. Logged: it is part of
-- the analytics' truth until folded.
{% import "macros/common.sql" as m %}
CREATE TABLE {{ m.q("checkout_session_rollup_delta") }} (
  bucket             TIMESTAMP WITH TIME ZONE NOT NULL,
  subscription_plan  VARCHAR(50) NOT NULL,
  status             VARCHAR(50) NOT NULL,
  sessions           BIGINT NOT NULL,
  retried            BIGINT NOT NULL,
  attempts           BIGINT NOT NULL,
  complete_seconds   NUMERIC NOT NULL,
  completed_1m       BIGINT NOT NULL,
  completed_5m       BIGINT NOT NULL,
  completed_15m      BIGINT NOT NULL,
  completed_1h       BIGINT NOT NULL,
  completed_6h       BIGINT NOT NULL,
  completed_24h      BIGINT NOT NULL,
  completed_more     BIGINT NOT NULL
) WITH (
  -- Every fold deletes what it folded: vacuum after a fixed number of dead (or inserted) rows, not a share
  -- of a table that is small by design, so readers' scans of it stay short.
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 5000,
  autovacuum_vacuum_insert_scale_factor = 0,
  autovacuum_vacuum_insert_threshold = 5000,
  autovacuum_analyze_scale_factor = 0,
  autovacuum_analyze_threshold = 5000
);

COMMENT ON TABLE {{ m.q("checkout_session_rollup_delta") }} IS
  'Signed changes to checkout_session_rollup appended by its statement triggers, not yet folded in by '
  'fold_checkout_session_rollup(); read both through checkout_session_rollup_current.';
