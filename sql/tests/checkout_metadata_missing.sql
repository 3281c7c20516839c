-- Checkout sessions whose metadata is NULL (the project's column holds an object, '{}' when empty)
{% import "macros/common.sql" as m %}
SELECT id, created_at
  FROM {{ m.q("payment_checkout_sessions") }}
 WHERE metadata IS NULL
