-- Checkout sessions whose subscription_plan is not in the plan catalogue (subscription_plans)
{% import "macros/common.sql" as m %}
SELECT s.id, s.subscription_plan, s.plan_price
  FROM {{ m.q("payment_checkout_sessions") }} s
 WHERE NOT EXISTS (SELECT 1 FROM {{ m.q("subscription_plans") }} p WHERE p.code = s.subscription_plan)
