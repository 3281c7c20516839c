-- Completion-time bands in checkout_session_rollup, so the time-to-complete histogram reads the rollup
-- (kept by sql/functions/checkout_session_rollup.sql, rebuilt when that file is applied) instead of
-- every completed session of the window; and an index that answers "webhook events of the last N hours
-- by outcome" without reading every event.
{% import "macros/common.sql" as m %}
ALTER TABLE {{ m.q("checkout_session_rollup") }}
  ADD COLUMN completed_1m   BIGINT NOT NULL DEFAULT 0,  -- completed in under a minute
  ADD COLUMN completed_5m   BIGINT NOT NULL DEFAULT 0,  -- 1 to 5 minutes
  ADD COLUMN completed_15m  BIGINT NOT NULL DEFAULT 0,  -- 5 to 15 minutes
  ADD COLUMN completed_1h   BIGINT NOT NULL DEFAULT 0,  -- 15 to 60 minutes
  ADD COLUMN completed_6h   BIGINT NOT NULL DEFAULT 0,  -- 1 to 6 hours
  ADD COLUMN completed_24h  BIGINT NOT NULL DEFAULT 0,  -- 6 to 24 hours
  ADD COLUMN completed_more BIGINT NOT NULL DEFAULT 0;  -- a day or more

CREATE INDEX idx_webhook_events_created ON {{ m.q("webhook_events") }} (created_at) INCLUDE (status);
