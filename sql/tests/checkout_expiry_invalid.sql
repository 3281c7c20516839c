-- Checkout sessions without expires_at, or whose expires_at is not after created_at
{% import "macros/common.sql" as m %}
SELECT id, created_at, expires_at
  FROM {{ m.q("payment_checkout_sessions") }}
 WHERE expires_at IS NULL OR expires_at <= created_at
