-- report: recent_webhooks
-- description: The latest Stripe events of one topic (or all), newest first (the reference's "Check webhook logs"); error holds a rejected event's reason.
-- param: topic text default checkout.session.completed -- Stripe event type, or all
-- param: status text default none -- only events with this outcome: received, processed, ignored, failed, rejected
-- param: limit integer default 10 min 1 max 10000 -- at most this many events
{% import "macros/common.sql" as m %}
SELECT id, stripe_event_id, topic, status, created_at, processed_at, deliveries, error
  FROM {{ m.q("webhook_events") }}
 WHERE (topic = %(topic)s::text OR %(topic)s::text = 'all')
   AND (%(status)s::text IS NULL OR status = %(status)s::text)
 ORDER BY created_at DESC, id DESC
 LIMIT %(limit)s::integer;
