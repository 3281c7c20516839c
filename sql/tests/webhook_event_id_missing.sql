-- Webhook events without a stripe_event_id
{% import "macros/common.sql" as m %}
SELECT id, topic, created_at
  FROM {{ m.q("webhook_events") }}
 WHERE stripe_event_id IS NULL
