"""Seed data shared by the report, rollup, doctor, metrics and dashboard tests: a few hundred sessions
spread over 40 days (some exactly on hour and window boundaries), every status, retries, Stripe ids,
webhook events and error logs. Deterministic: values come from the row number, not a random source."""

from __future__ import annotations

import psycopg

SEED_SQL = """
INSERT INTO users (email) SELECT 'seed-' || i || '@example.com' FROM generate_series(1, %(n)s) AS i;

WITH u AS (
  SELECT id, email, row_number() OVER (ORDER BY email) AS rn FROM users WHERE email LIKE 'seed-%%'
), shaped AS (
  SELECT u.*,
         (ARRAY['basic', 'pro', 'enterprise'])[1 + rn %% 3] AS plan,
         CASE WHEN rn %% 5 IN (1, 2) THEN 'completed' WHEN rn %% 5 = 0 THEN 'pending'
              WHEN rn %% 5 = 3 THEN 'expired' WHEN rn %% 2 = 0 THEN 'canceled' ELSE 'failed' END AS status,
         now() - (rn * 137 %% (40 * 24 * 60)) * INTERVAL '1 minute' - (rn %% 7) * INTERVAL '1 second' AS created
    FROM u
)
INSERT INTO payment_checkout_sessions
       (user_id, email, subscription_plan, plan_price, payment_provider, stripe_session_id, status,
        created_at, completed_at, attempts)
SELECT id, email, plan, (SELECT price FROM subscription_plans WHERE code = plan), 'stripe',
       CASE WHEN rn %% 3 <> 0 THEN 'cs_seed_' || rn END, status, created,
       CASE WHEN status = 'completed' THEN created + (rn %% 97) * INTERVAL '37 seconds'
                                            + (CASE WHEN rn %% 11 = 1 THEN rn %% 30 ELSE 0 END) * INTERVAL '1 hour' END,
       1 + rn %% 4
  FROM shaped;

-- Rows exactly on the boundaries the reports' windows and the rollup's hours have.
-- The last one (canceled) is a moment old, so "today" holds a session in every time zone at any hour (the
-- reference's completion-rate query divides by that count).
INSERT INTO users (email) SELECT 'edge-' || i || '@example.com' FROM generate_series(1, 7) AS i;
WITH u AS (SELECT id, email, row_number() OVER (ORDER BY email) AS rn FROM users WHERE email LIKE 'edge-%%')
INSERT INTO payment_checkout_sessions
       (user_id, email, subscription_plan, plan_price, payment_provider, status, created_at, completed_at)
SELECT id, email, 'pro', 29.99, 'stripe',
       CASE WHEN rn = 7 THEN 'canceled' WHEN rn %% 2 = 0 THEN 'completed' ELSE 'pending' END, at,
       CASE WHEN rn %% 2 = 0 THEN at + INTERVAL '5 minutes' END
  FROM u, LATERAL (SELECT CASE rn
       WHEN 1 THEN checkout_rollup_bucket(now() - INTERVAL '7 days')
       WHEN 2 THEN checkout_rollup_bucket(now() - INTERVAL '7 days') + INTERVAL '1 hour'
       WHEN 3 THEN checkout_rollup_bucket(now() - INTERVAL '30 days') + INTERVAL '1 hour'
       WHEN 4 THEN CURRENT_DATE::timestamptz
       WHEN 5 THEN checkout_rollup_bucket(now())
       WHEN 6 THEN now() - INTERVAL '30 days' + INTERVAL '1 second'
       ELSE now() - INTERVAL '1 second' END AS at) AS t;

-- Life goes on: some pending sessions expire, some completed ones are cleaned up.
UPDATE payment_checkout_sessions SET status = 'expired'
 WHERE status = 'pending' AND created_at < now() - INTERVAL '30 days';
DELETE FROM payment_checkout_sessions WHERE status = 'completed' AND created_at < now() - INTERVAL '38 days';

INSERT INTO webhook_events (stripe_event_id, topic, payload, status, created_at, processed_at)
SELECT 'evt_seed_' || i,
       (ARRAY['checkout.session.completed', 'checkout.session.expired', 'invoice.paid'])[1 + i %% 3],
       '{}'::jsonb,
       (ARRAY['processed', 'processed', 'ignored', 'failed', 'received'])[1 + i %% 5],
       now() - i * INTERVAL '17 minutes', now() - i * INTERVAL '17 minutes' + INTERVAL '1 second'
  FROM generate_series(1, 60) AS i;

INSERT INTO error_logs (category, message, created_at)
SELECT (ARRAY['database', 'stripe', 'webhook'])[1 + i %% 3], 'seeded error ' || i, now() - i * INTERVAL '5 hours'
  FROM generate_series(1, 30) AS i;
"""


def seed(conn: psycopg.Connection, sessions: int = 400) -> None:
    """Fill a freshly applied database with the seed data."""
    # Several statements in one call: bound client-side (the value is ours, an integer).
    with conn.transaction(), psycopg.ClientCursor(conn) as cursor:
        cursor.execute(SEED_SQL, {"n": int(sessions)})
