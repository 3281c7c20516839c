-- Webhook events whose stripe_event_id an older row already has (each Stripe event is recorded once)
{% import "macros/common.sql" as m %}
SELECT e.id, e.stripe_event_id, e.topic, e.created_at
  FROM {{ m.q("webhook_events") }} e
 WHERE e.stripe_event_id IS NOT NULL
   AND EXISTS (SELECT 1 FROM {{ m.q("webhook_events") }} o
                WHERE o.stripe_event_id = e.stripe_event_id AND o.id < e.id)
