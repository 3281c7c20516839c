-- Checkout sessions whose plan_price is zero, negative or NULL
{% import "macros/common.sql" as m %}
SELECT id, subscription_plan, plan_price
  FROM {{ m.q("payment_checkout_sessions") }}
 WHERE plan_price IS NULL OR plan_price <= 0
