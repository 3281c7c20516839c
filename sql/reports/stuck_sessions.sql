-- report: stuck_sessions
-- description: Pending sessions that already have a Stripe session id (the reference's "Session Not Completing" check), oldest first.
-- param: min_age interval default 0 minutes -- only those created at least this long ago
-- param: limit integer default 100 min 1 max 100000 -- at most this many rows
--
-- A Stripe session exists but no completion arrived: look up the Stripe session and the webhook_events
-- of the same time (report recent_webhooks).
{% import "macros/common.sql" as m %}
SELECT id, user_id, email, subscription_plan, stripe_session_id, created_at, expires_at, attempts,
       round(EXTRACT(EPOCH FROM (now() - created_at)) / 60, 1) AS age_minutes
  FROM {{ m.q("payment_checkout_sessions") }}
 WHERE stripe_session_id IS NOT NULL
   AND status = 'pending'
   AND created_at <= now() - %(min_age)s::interval
 ORDER BY created_at, id
 LIMIT %(limit)s::integer;
