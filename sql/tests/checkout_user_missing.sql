-- Checkout sessions whose user_id has no row in users
{% import "macros/common.sql" as m %}
SELECT s.id, s.user_id, s.email
  FROM {{ m.q("payment_checkout_sessions") }} s
 WHERE NOT EXISTS (SELECT 1 FROM {{ m.q("users") }} u WHERE u.id = s.user_id)
