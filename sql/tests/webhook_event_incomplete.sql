-- Webhook events without a topic, a payload or a created_at
{% import "macros/common.sql" as m %}
SELECT id, stripe_event_id, topic, created_at
  FROM {{ m.q("webhook_events") }}
 WHERE topic IS NULL OR payload IS NULL OR created_at IS NULL
