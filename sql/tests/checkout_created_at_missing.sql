-- Checkout sessions without created_at
{% import "macros/common.sql" as m %}
SELECT id, created_at, expires_at, completed_at
  FROM {{ m.q("payment_checkout_sessions") }}
 WHERE created_at IS NULL
