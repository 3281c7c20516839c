-- Resolves sql/tests/user_status_unknown.sql: a known status but for case or spaces becomes it; Stripe's
-- subscription statuses map to the project's (trialing -> active, unpaid -> past_due, cancelled ->
-- canceled); anything else, and NULL, becomes 'inactive'. The original is in runner_adoption_log.
{% import "adopt/macros.sql" as a %}
{% call a.resolve("users", "user_status_unknown", "uuid") -%}
subscription_status = CASE
           WHEN lower(btrim(s.subscription_status)) IN ('inactive', 'active', 'past_due', 'canceled')
             THEN lower(btrim(s.subscription_status))
           WHEN lower(btrim(s.subscription_status)) = 'trialing' THEN 'active'
           WHEN lower(btrim(s.subscription_status)) = 'unpaid' THEN 'past_due'
           WHEN lower(btrim(s.subscription_status)) = 'cancelled' THEN 'canceled'
           ELSE 'inactive' END
{%- endcall %}
