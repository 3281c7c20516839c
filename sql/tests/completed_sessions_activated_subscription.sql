-- A completed session's user has had a subscription activated: not 'inactive', with a plan and subscribed_at
{#- The triggers of sql/functions/checkout_session_rules.sql activate the subscription whenever a session
    becomes completed, whoever completes it. 'past_due' and 'canceled' are allowed: Stripe's subscription
    lifecycle may move an active subscription on later; 'inactive' after a payment never is. -#}
{% import "macros/common.sql" as m %}
SELECT s.id, s.user_id, s.subscription_plan, s.completed_at,
       u.subscription_status, u.subscription_plan AS user_plan, u.subscribed_at
  FROM {{ m.q("payment_checkout_sessions") }} AS s
  JOIN {{ m.q("users") }} AS u ON u.id = s.user_id
 WHERE s.status = 'completed'
   AND (u.subscription_status = 'inactive' OR u.subscription_plan IS NULL OR u.subscribed_at IS NULL)
 ORDER BY s.completed_at, s.id
