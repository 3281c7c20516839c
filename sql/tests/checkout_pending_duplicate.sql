-- Pending checkout sessions with a newer pending session for the same user and plan (at most one may be pending)
{% import "macros/common.sql" as m %}
SELECT s.id, s.user_id, s.subscription_plan, s.created_at
  FROM {{ m.q("payment_checkout_sessions") }} s
 WHERE s.status = 'pending'
   AND EXISTS (
         SELECT 1
           FROM {{ m.q("payment_checkout_sessions") }} n
          WHERE n.user_id = s.user_id
            AND n.subscription_plan = s.subscription_plan
            AND n.status = 'pending'
            AND (coalesce(n.created_at, '-infinity'), n.id) > (coalesce(s.created_at, '-infinity'), s.id))
