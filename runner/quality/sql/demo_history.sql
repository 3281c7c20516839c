-- runner demo: what the quarter's checkouts left behind besides their rows (runner/quality/demo.py).
-- Run after runner/quality/generator.py filled users and payment_checkout_sessions. Each `-- step:` is one
-- statement, run with the bound parameters seed (integer), now (timestamptz) and days (integer).
-- Everything "random" is pg_temp.demo_draw(key): a hash of a row's key and the seed, so a seed and a `now`
-- give the same rows every time. Nothing here runs the service or the jobs: it writes what they would have
-- written (events as the webhook records them, emails as the outbox keeps them, runs as job_runs holds them).

-- step: helpers
CREATE FUNCTION pg_temp.demo_draw(p_key TEXT, p_seed INTEGER) RETURNS DOUBLE PRECISION
LANGUAGE sql IMMUTABLE AS $$
  SELECT (hashtextextended(p_key, p_seed) & 2147483647)::float8 / 2147483648
$$;

-- step: webhook events
-- Stripe's events for the sessions that reached Stripe: a completion (4% paid later by a delayed method:
-- first `unpaid`, then async_payment_succeeded), an async failure, an expiry (the webhook beats the hourly
-- expire job to those), a few completions rejected for a wrong amount (a coupon), 3% delivered twice.
WITH s AS (
  SELECT s.*, lower(coalesce(s.currency, p.currency)) AS cur,
         pg_temp.demo_draw(s.id::text || '/event', %(seed)s) AS r,
         pg_temp.demo_draw(s.id::text || '/delivery', %(seed)s) AS d
    FROM payment_checkout_sessions s
    JOIN subscription_plans p ON p.code = s.subscription_plan
   WHERE s.stripe_session_id IS NOT NULL
), e AS (
  SELECT s.*, 'checkout.session.completed' AS topic, 'processed' AS event_status, 'completed' AS outcome,
         s.completed_at - INTERVAL '2 seconds' AS at, 'paid' AS payment_status, 'complete' AS stripe_status,
         stripe_amount_minor_units(s.plan_price, s.cur) AS amount, '1' AS n
    FROM s WHERE s.status = 'completed' AND s.r >= 0.04
  UNION ALL
  SELECT s.*, 'checkout.session.completed', 'processed', 'awaiting payment (unpaid)',
         s.created_at + (s.completed_at - s.created_at) / 4, 'unpaid', 'complete',
         stripe_amount_minor_units(s.plan_price, s.cur), '1'
    FROM s WHERE s.status = 'completed' AND s.r < 0.04
  UNION ALL
  SELECT s.*, 'checkout.session.async_payment_succeeded', 'processed', 'completed',
         s.completed_at - INTERVAL '2 seconds', 'paid', 'complete', stripe_amount_minor_units(s.plan_price, s.cur), '2'
    FROM s WHERE s.status = 'completed' AND s.r < 0.04
  UNION ALL
  SELECT s.*, 'checkout.session.async_payment_failed', 'processed', 'failed',
         s.created_at + (s.expires_at - s.created_at) / 10, 'unpaid', 'complete',
         stripe_amount_minor_units(s.plan_price, s.cur), '1'
    FROM s WHERE s.status = 'failed'
  UNION ALL
  SELECT s.*, 'checkout.session.expired', 'processed', 'expired', s.expires_at, 'unpaid', 'expired',
         stripe_amount_minor_units(s.plan_price, s.cur), '1'
    FROM s WHERE s.status = 'expired' AND s.r >= 0.01
  UNION ALL
  SELECT s.*, 'checkout.session.completed', 'rejected',
         'rejected: amount_total ' || (stripe_amount_minor_units(s.plan_price, s.cur) / 2)::text
           || ' differs from the plan price ' || stripe_amount_minor_units(s.plan_price, s.cur)::text,
         s.created_at + (s.expires_at - s.created_at) / 20, 'paid', 'complete',
         stripe_amount_minor_units(s.plan_price, s.cur) / 2, '1'
    FROM s WHERE s.status = 'expired' AND s.r < 0.01
)
INSERT INTO webhook_events (stripe_event_id, topic, payload, livemode, status, outcome, error, deliveries,
                            created_at, processed_at, last_delivered_at, checkout_session_id)
SELECT 'evt_demo_' || left(md5(e.id::text || '/' || e.topic || '/' || %(seed)s), 24), e.topic,
       jsonb_build_object(
         'id', 'evt_demo_' || left(md5(e.id::text || '/' || e.topic || '/' || %(seed)s), 24), 'object', 'event',
         'livemode', false, 'api_version', '2025-01-27.acacia', 'created', extract(epoch FROM e.at)::bigint,
         'type', e.topic, 'data', jsonb_build_object('object', jsonb_build_object(
           'id', e.stripe_session_id, 'object', 'checkout.session', 'amount_total', e.amount,
           'currency', e.cur, 'customer', e.stripe_customer_id, 'client_reference_id', e.id, 'livemode', false,
           'mode', 'subscription', 'payment_status', e.payment_status, 'status', e.stripe_status,
           'metadata', jsonb_build_object('userId', e.user_id, 'plan', e.subscription_plan,
                                          'checkoutSessionId', e.id)))),
       false, e.event_status, e.outcome, NULL, CASE WHEN e.d < 0.03 THEN 2 ELSE 1 END,
       e.at, e.at + INTERVAL '40 milliseconds',
       e.at + CASE WHEN e.d < 0.03 THEN INTERVAL '1 minute' * (1 + 30 * e.d) ELSE INTERVAL '0' END, e.id
  FROM e
 WHERE e.at <= %(now)s::timestamptz
 ORDER BY e.at, e.id, e.n;

-- step: ignored events
-- Someone once enabled customer.* events on the endpoint: recorded, ignored.
INSERT INTO webhook_events (stripe_event_id, topic, payload, livemode, status, outcome, created_at, processed_at,
                            last_delivered_at)
SELECT 'evt_demo_' || left(md5(s.id::text || '/customer/' || %(seed)s), 24), 'customer.created',
       jsonb_build_object('id', 'evt_demo_' || left(md5(s.id::text || '/customer/' || %(seed)s), 24),
                          'object', 'event', 'livemode', false, 'type', 'customer.created',
                          'created', extract(epoch FROM s.completed_at)::bigint,
                          'data', jsonb_build_object('object', jsonb_build_object(
                            'id', s.stripe_customer_id, 'object', 'customer', 'email', s.email))),
       false, 'ignored', 'event type not handled', s.completed_at - INTERVAL '3 seconds',
       s.completed_at - INTERVAL '3 seconds', s.completed_at - INTERVAL '3 seconds'
  FROM payment_checkout_sessions s
 WHERE s.status = 'completed' AND pg_temp.demo_draw(s.id::text || '/customer', %(seed)s) < 0.05
 ORDER BY s.completed_at, s.id;

-- step: verification emails
-- One per completed session, as the webhook queues it; the send-email job (every 5 minutes) sent it, the
-- first try refused now and then (greylisting); those of the last 5 minutes still wait.
WITH s AS (
  SELECT s.*, lower(coalesce(s.currency, p.currency)) AS cur,
         pg_temp.demo_draw(s.id::text || '/mail', %(seed)s) AS r,
         date_bin(INTERVAL '5 minutes', s.completed_at, TIMESTAMPTZ '2000-01-01') + INTERVAL '5 minutes'
           + CASE WHEN pg_temp.demo_draw(s.id::text || '/mail', %(seed)s) < 0.02 THEN INTERVAL '10 minutes'
                  ELSE INTERVAL '0' END
           + INTERVAL '1 second' * (1 + 20 * pg_temp.demo_draw(s.id::text || '/sent', %(seed)s)) AS sent
    FROM payment_checkout_sessions s
    JOIN subscription_plans p ON p.code = s.subscription_plan
   WHERE s.status = 'completed'
)
INSERT INTO email_outbox (kind, dedupe_key, recipient, user_id, checkout_session_id, context, status, attempts,
                          last_error, created_at, next_attempt_at, sent_at)
SELECT 'verification', 'verification:' || s.id, s.email, s.user_id, s.id,
       jsonb_build_object('plan', s.subscription_plan, 'amount', s.plan_price, 'currency', s.cur),
       CASE WHEN s.sent <= %(now)s::timestamptz THEN 'sent' ELSE 'queued' END,
       CASE WHEN s.sent > %(now)s::timestamptz THEN 0 WHEN s.r < 0.02 THEN 2 ELSE 1 END,
       NULL,
       s.completed_at,
       CASE WHEN s.sent <= %(now)s::timestamptz THEN s.sent ELSE s.completed_at END,
       CASE WHEN s.sent <= %(now)s::timestamptz THEN s.sent END
  FROM s
 ORDER BY s.completed_at, s.id;

-- step: reminder emails
-- The 6-hourly remind job queued one reminder per checkout still pending 6-24 hours after it began (fewer
-- than 3 attempts); the next send-email run delivered it, or the address bounced (1%).
WITH s AS (
  SELECT s.*,
         date_bin(INTERVAL '6 hours', s.created_at + INTERVAL '6 hours', TIMESTAMPTZ '2000-01-01')
           + INTERVAL '6 hours' AS queued,
         pg_temp.demo_draw(s.id::text || '/reminder', %(seed)s) AS r
    FROM payment_checkout_sessions s
   WHERE s.status IN ('pending', 'expired') AND s.attempts < 3
), q AS (
  SELECT s.*, s.queued + INTERVAL '5 minutes' + INTERVAL '1 second' * (1 + 60 * s.r) AS sent
    FROM s
   WHERE s.queued > s.created_at + INTERVAL '6 hours' AND s.queued < s.created_at + INTERVAL '24 hours'
     AND s.queued < s.expires_at AND s.queued <= %(now)s::timestamptz
)
INSERT INTO email_outbox (kind, dedupe_key, recipient, user_id, checkout_session_id, context, status, attempts,
                          last_error, created_at, next_attempt_at, sent_at)
SELECT 'reminder', 'reminder:' || q.id, q.email, q.user_id, q.id,
       jsonb_build_object('subscription_plan', q.subscription_plan, 'plan_price', q.plan_price::text,
                          'currency', q.currency, 'created_at', q.created_at, 'expires_at', q.expires_at,
                          'checkout_url', q.checkout_url),
       CASE WHEN q.sent > %(now)s::timestamptz THEN 'queued' WHEN q.r < 0.01 THEN 'failed' ELSE 'sent' END,
       CASE WHEN q.sent > %(now)s::timestamptz THEN 0 ELSE 1 END,
       CASE WHEN q.sent <= %(now)s::timestamptz AND q.r < 0.01
            THEN '550 5.1.1 <' || q.email || '>: recipient address rejected: mailbox unavailable' END,
       q.queued,
       CASE WHEN q.sent > %(now)s::timestamptz THEN q.queued ELSE q.sent END,
       CASE WHEN q.sent <= %(now)s::timestamptz AND q.r >= 0.01 THEN q.sent END
  FROM q
 ORDER BY q.queued, q.id;

-- step: error logs
-- What support would find: Stripe timeouts (retried, the customer got the session anyway), the rejected
-- completions, greylisted and bounced emails.
INSERT INTO error_logs (category, message, context, created_at)
SELECT category, message, context, created_at FROM (
  SELECT 'stripe' AS category,
         'create checkout session failed for checkout session ' || s.id
           || ': Request timed out (retried with the same idempotency key)' AS message,
         jsonb_build_object('checkout_session_id', s.id, 'user_id', s.user_id, 'error_type', 'APIConnectionError',
                            'http_status', NULL) AS context,
         s.created_at + INTERVAL '20 seconds' AS created_at, s.id AS key
    FROM payment_checkout_sessions s
   WHERE s.stripe_session_id IS NOT NULL AND pg_temp.demo_draw(s.id::text || '/stripe-error', %(seed)s) < 0.006
  UNION ALL
  SELECT 'webhook', 'completion rejected for checkout session ' || w.checkout_session_id || ': ' || w.outcome,
         jsonb_build_object('stripe_event_id', w.stripe_event_id, 'topic', w.topic,
                            'checkout_session_id', w.checkout_session_id),
         w.created_at, w.checkout_session_id
    FROM webhook_events w WHERE w.status = 'rejected'
  UNION ALL
  SELECT 'email', 'email ' || o.id || ' (' || o.kind || ') to ' || o.recipient || ': '
           || coalesce(o.last_error, '450 4.7.1 greylisted, try again later'),
         jsonb_build_object('email_id', o.id, 'kind', o.kind, 'attempt', 1),
         coalesce(o.sent_at - INTERVAL '10 minutes', o.next_attempt_at), o.checkout_session_id
    FROM email_outbox o WHERE o.attempts = 2 OR o.status = 'failed'
) x
 WHERE created_at <= %(now)s::timestamptz
 ORDER BY created_at, key;

-- step: job runs
-- The schedules of DESIGN.md over the quarter: expire hourly (the sessions no Stripe event expired),
-- remind every 6 hours, send-email and rollup every 5 minutes, cleanup on Sundays at 03:30. A few runs
-- failed (a lock timeout, an SMTP outage) or were skipped (overlap); every job's latest run succeeded.
WITH runs AS (
  SELECT 'expire' AS job, t FROM generate_series(
    date_trunc('hour', %(now)s::timestamptz - %(days)s * INTERVAL '1 day') + INTERVAL '1 hour',
    %(now)s::timestamptz, INTERVAL '1 hour') t
  UNION ALL
  SELECT 'remind', t FROM generate_series(
    date_bin(INTERVAL '6 hours', %(now)s::timestamptz - %(days)s * INTERVAL '1 day', TIMESTAMPTZ '2000-01-01')
      + INTERVAL '6 hours', %(now)s::timestamptz, INTERVAL '6 hours') t
  UNION ALL
  SELECT j.job, t FROM (VALUES ('send-email'), ('rollup')) j (job), generate_series(
    date_bin(INTERVAL '5 minutes', %(now)s::timestamptz - %(days)s * INTERVAL '1 day', TIMESTAMPTZ '2000-01-01')
      + INTERVAL '5 minutes', %(now)s::timestamptz, INTERVAL '5 minutes') t
  UNION ALL
  SELECT 'cleanup', t FROM generate_series(
    date_trunc('week', %(now)s::timestamptz - %(days)s * INTERVAL '1 day') + INTERVAL '6 days 3 hours 30 minutes',
    %(now)s::timestamptz, INTERVAL '7 days') t
), work AS (
  -- What each run found to do, bucketed by the run that did it (a run at t handles (t - period, t]).
  SELECT 'expire' AS job, date_trunc('hour', s.expires_at - INTERVAL '1 microsecond') + INTERVAL '1 hour' AS t,
         count(*) AS n
    FROM payment_checkout_sessions s WHERE s.status = 'expired' AND s.stripe_session_id IS NULL GROUP BY 2
  UNION ALL
  SELECT 'remind', o.created_at, count(*) FROM email_outbox o WHERE o.kind = 'reminder' GROUP BY 2
  UNION ALL
  SELECT 'send-email', date_bin(INTERVAL '5 minutes', o.sent_at - INTERVAL '1 microsecond', TIMESTAMPTZ '2000-01-01'),
         count(*)
    FROM email_outbox o WHERE o.sent_at IS NOT NULL GROUP BY 2
  UNION ALL
  SELECT 'rollup', date_bin(INTERVAL '5 minutes', s.created_at - INTERVAL '1 microsecond', TIMESTAMPTZ '2000-01-01')
                     + INTERVAL '5 minutes', count(*)
    FROM payment_checkout_sessions s GROUP BY 2
), counted AS (
  SELECT r.job, r.t, coalesce(w.n, 0) AS n,
         pg_temp.demo_draw(r.job || '/' || r.t::text, %(seed)s) AS x,
         r.t = max(r.t) OVER (PARTITION BY r.job) AS latest
    FROM runs r LEFT JOIN work w ON w.job = r.job AND w.t = r.t
)
INSERT INTO job_runs (job, started_at, finished_at, rows, batches, outcome, error, details, client)
SELECT c.job, c.t + INTERVAL '1 second' * (1 + 3 * c.x),
       c.t + INTERVAL '1 second' * (1 + 3 * c.x) + INTERVAL '1 millisecond' * (15 + c.n * 2 + 200 * c.x),
       CASE WHEN o.outcome = 'succeeded' THEN c.n ELSE 0 END,
       CASE WHEN o.outcome = 'succeeded' AND c.n > 0 THEN 1 ELSE 0 END,
       o.outcome, o.error,
       CASE c.job
         WHEN 'expire' THEN jsonb_build_object('batch_size', 10000, 'rollup_deltas_folded', c.n)
         WHEN 'remind' THEN jsonb_build_object('queued', c.n)
         WHEN 'send-email' THEN jsonb_build_object('sent', c.n)
         WHEN 'rollup' THEN jsonb_build_object('batch_size', 100000)
         ELSE jsonb_build_object('batch_size', 1000, 'retention_days', 90)
       END,
       'runner job ' || c.job || ' (pid ' || (1000 + (c.x * 30000)::int) || ' on jobs-1)'
  FROM counted c
 CROSS JOIN LATERAL (SELECT
     CASE WHEN c.latest THEN 'succeeded'
          WHEN c.x < 0.002 THEN 'skipped'
          WHEN c.x < 0.004 THEN 'failed' ELSE 'succeeded' END AS outcome,
     CASE WHEN c.latest THEN NULL
          WHEN c.x < 0.002 THEN 'another run of ' || c.job || ' holds its lock'
          WHEN c.x < 0.004 THEN CASE c.job
              WHEN 'send-email' THEN 'SMTP server smtp.example.com:587 unreachable: timed out'
              ELSE 'canceling statement due to lock timeout' END
     END AS error) o
 ORDER BY c.t, c.job;
