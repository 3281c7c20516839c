-- Completed checkout sessions without completed_at
{% import "macros/common.sql" as m %}
SELECT id, status, completed_at, created_at
  FROM {{ m.q("payment_checkout_sessions") }}
 WHERE status = 'completed' AND completed_at IS NULL
