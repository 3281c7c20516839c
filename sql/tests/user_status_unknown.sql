-- Users whose subscription_status is not one the project knows (inactive, active, past_due, canceled), or NULL
{% import "macros/common.sql" as m %}
SELECT id, subscription_status
  FROM {{ m.q("users") }}
 WHERE subscription_status IS NULL OR subscription_status NOT IN ('inactive', 'active', 'past_due', 'canceled')
