-- Users whose subscription_plan is not in the plan catalogue (subscription_plans)
{% import "macros/common.sql" as m %}
SELECT u.id, u.subscription_plan
  FROM {{ m.q("users") }} u
 WHERE u.subscription_plan IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM {{ m.q("subscription_plans") }} p WHERE p.code = u.subscription_plan)
