-- The expire and cleanup jobs change a small share of a large table at a time. With the default
-- scale factor (20% of the table), autovacuum would not run after expiring even a million of ten million
-- rows, and the partial indexes (pending, expired) would keep listing dead rows until it did, which
-- slows the next job run. 2% keeps them lean; per-table settings, so nothing else changes.
{% import "macros/common.sql" as m %}
ALTER TABLE {{ m.q("payment_checkout_sessions") }} SET (
  autovacuum_vacuum_scale_factor = 0.02,
  autovacuum_analyze_scale_factor = 0.02
);
