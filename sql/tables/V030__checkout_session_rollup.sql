-- Hourly rollup of payment_checkout_sessions for the reports, the dashboard and /metrics: one row per
-- (hour of created_at, plan, status) with the sums the reports need, so a question over ten million
-- sessions reads thousands of rollup rows instead. Kept equal to the raw table by the statement
-- triggers of sql/functions/checkout_session_rollup.sql (which also builds it from existing rows), and
-- compared with the raw table by tests/test_rollup.py and `runner doctor`.
--
-- Hours are UTC-anchored (date_bin), so a day in any time zone whose offset is a whole number of hours
-- is a whole number of buckets.
{% import "macros/common.sql" as m %}
CREATE TABLE {{ m.q("checkout_session_rollup") }} (
  bucket             TIMESTAMP WITH TIME ZONE NOT NULL,
  subscription_plan  VARCHAR(50) NOT NULL,
  status             VARCHAR(50) NOT NULL,
  sessions           BIGINT NOT NULL DEFAULT 0,
  -- sessions with attempts > 1: the user came back to the same checkout
  retried            BIGINT NOT NULL DEFAULT 0,
  attempts           BIGINT NOT NULL DEFAULT 0,
  -- sum over completed sessions of completed_at - created_at, in seconds
  complete_seconds   NUMERIC NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, subscription_plan, status)
);

COMMENT ON TABLE {{ m.q("checkout_session_rollup") }} IS
  'Hourly (UTC) rollup of payment_checkout_sessions by plan and status, maintained by statement triggers; '
  'rebuild with SELECT rebuild_checkout_session_rollup().';

-- Recent sessions by creation time: the partial first hour of a report window, "sessions today".
CREATE INDEX idx_payment_checkout_sessions_created_at
  ON {{ m.q("payment_checkout_sessions") }} (created_at) INCLUDE (status);
-- Time to complete: percentiles read completed_at without touching the table.
CREATE INDEX idx_payment_checkout_sessions_completed
  ON {{ m.q("payment_checkout_sessions") }} (created_at) INCLUDE (completed_at) WHERE status = 'completed';
