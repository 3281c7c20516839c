-- Checkout sessions whose attempts is NULL or negative
{% import "macros/common.sql" as m %}
SELECT id, attempts
  FROM {{ m.q("payment_checkout_sessions") }}
 WHERE attempts IS NULL OR attempts < 0
