-- A year of the reference system's rows (parameters: %(sessions)s, %(users)s), then every kind of dirty row
-- that issue 12 names, in the exact numbers tests/reference_db.py's DIRTY expects. Deterministic: ids are
-- md5-derived UUIDs, choices are functions of the row number.

INSERT INTO users (id, email, subscription_status, subscription_plan, stripe_customer_id, created_at, updated_at)
SELECT md5('u' || u)::uuid, 'user' || u || '@example.com',
       CASE WHEN u %% 3 = 0 THEN 'active' ELSE 'inactive' END,
       CASE WHEN u %% 3 = 0 THEN (ARRAY['basic', 'pro', 'enterprise'])[1 + u %% 3] END,
       CASE WHEN u %% 3 = 0 THEN 'cus_' || u END,
       now() - interval '400 days' + u * interval '1 minute', now() - interval '1 day'
  FROM generate_series(1, %(users)s) AS u;

-- Clean history: completed, expired, canceled, failed sessions over the last year (none pending: the
-- open ones come below, one per user and plan). One in five has no metadata (written before the app
-- started filling it): NULL metadata is a dirty row of its own (the project's column is NOT NULL).
INSERT INTO payment_checkout_sessions
  (id, user_id, email, subscription_plan, plan_price, payment_provider, stripe_session_id, status,
   created_at, expires_at, completed_at, attempts, metadata)
SELECT md5('s' || i)::uuid, md5('u' || (1 + i %% %(users)s))::uuid, 'user' || (1 + i %% %(users)s) || '@example.com',
       p.code, p.price, 'stripe',
       CASE WHEN i %% 10 < 7 THEN 'cs_test_' || i END,
       st.status,
       t.created_at, t.created_at + interval '24 hours',
       CASE WHEN st.status = 'completed' THEN t.created_at + (i %% 3600) * interval '1 second' END,
       1 + i %% 3,
       CASE WHEN i %% 5 <> 0 THEN jsonb_build_object('source', 'web', 'n', i) END
  FROM generate_series(1, %(sessions)s) AS i
 CROSS JOIN LATERAL (SELECT now() - interval '2 days' - (i::float8 / %(sessions)s) * interval '363 days' AS created_at) t
 CROSS JOIN LATERAL (SELECT (ARRAY['basic', 'pro', 'enterprise'])[1 + i %% 3] AS code,
                            (ARRAY[9.99, 29.99, 99.99])[1 + i %% 3]::numeric(10, 2) AS price) p
 CROSS JOIN LATERAL (SELECT CASE WHEN i %% 10 < 6 THEN 'completed' WHEN i %% 10 < 9 THEN 'expired'
                                 WHEN i %% 20 = 9 THEN 'canceled' ELSE 'failed' END AS status) st;

-- Open checkouts: one pending 'basic' session for every tenth user, started in the last day.
INSERT INTO payment_checkout_sessions
  (id, user_id, email, subscription_plan, plan_price, payment_provider, status, created_at, expires_at, attempts, metadata)
SELECT md5('p' || u)::uuid, md5('u' || u)::uuid, 'user' || u || '@example.com', 'basic', 9.99, 'stripe', 'pending',
       now() - (u %% 20) * interval '1 hour', now() - (u %% 20) * interval '1 hour' + interval '24 hours', 1, '{}'
  FROM generate_series(10, %(users)s, 10) AS u;

-- Dirty rows, each kind in a known number (the name is the rule of sql/tests/ that finds it).
INSERT INTO payment_checkout_sessions
  (id, user_id, email, subscription_plan, plan_price, payment_provider, stripe_session_id, status,
   created_at, expires_at, completed_at, attempts, metadata)
VALUES
  -- checkout_status_unknown (5): a stray spelling, two statuses the project does not know, NULL
  (md5('d-status-1')::uuid, md5('u1')::uuid, 'user1@example.com', 'pro', 29.99, 'stripe', 'cs_d_status_1', 'Completed ',
   now() - interval '30 days', now() - interval '29 days', now() - interval '30 days' + interval '5 minutes', 1, '{}'),
  (md5('d-status-2')::uuid, md5('u2')::uuid, 'user2@example.com', 'pro', 29.99, 'stripe', NULL, 'PENDING',
   now() - interval '40 days', now() - interval '39 days', NULL, 1, '{}'),
  (md5('d-status-3')::uuid, md5('u3')::uuid, 'user3@example.com', 'basic', 9.99, 'stripe', 'cs_d_status_3', 'refunded',
   now() - interval '50 days', now() - interval '49 days', NULL, 1, '{}'),
  (md5('d-status-4')::uuid, md5('u4')::uuid, 'user4@example.com', 'basic', 9.99, 'stripe', NULL, 'disputed',
   now() - interval '60 days', now() - interval '59 days', NULL, 1, '{"note": "chargeback"}'),
  (md5('d-status-5')::uuid, md5('u5')::uuid, 'user5@example.com', 'basic', 9.99, 'stripe', NULL, NULL,
   now() - interval '70 days', now() - interval '69 days', NULL, 1, '{}'),
  -- checkout_completed_without_time (3)
  (md5('d-cnt-1')::uuid, md5('u6')::uuid, 'user6@example.com', 'pro', 29.99, 'stripe', 'cs_d_cnt_1', 'completed',
   now() - interval '80 days', now() - interval '79 days', NULL, 1, '{}'),
  (md5('d-cnt-2')::uuid, md5('u7')::uuid, 'user7@example.com', 'pro', 29.99, 'stripe', 'cs_d_cnt_2', 'completed',
   now() - interval '81 days', now() - interval '80 days', NULL, 1, '{}'),
  (md5('d-cnt-3')::uuid, md5('u8')::uuid, 'user8@example.com', 'pro', 29.99, 'stripe', 'cs_d_cnt_3', 'completed',
   now() - interval '82 days', now() - interval '81 days', NULL, 1, '{}'),
  -- checkout_completed_time_without_status (3): two expired rows Stripe did confirm, one canceled
  (md5('d-tns-1')::uuid, md5('u9')::uuid, 'user9@example.com', 'basic', 9.99, 'stripe', 'cs_d_tns_1', 'expired',
   now() - interval '90 days', now() - interval '89 days', now() - interval '89 days' - interval '1 hour', 1, '{}'),
  (md5('d-tns-2')::uuid, md5('u11')::uuid, 'user11@example.com', 'basic', 9.99, 'stripe', 'cs_d_tns_2', 'expired',
   now() - interval '91 days', now() - interval '90 days', now() - interval '90 days' - interval '1 hour', 1, '{}'),
  (md5('d-tns-3')::uuid, md5('u12')::uuid, 'user12@example.com', 'basic', 9.99, 'stripe', NULL, 'canceled',
   now() - interval '92 days', now() - interval '91 days', now() - interval '92 days' + interval '1 minute', 1, '{}'),
  -- checkout_created_at_missing (2)
  (md5('d-cre-1')::uuid, md5('u13')::uuid, 'user13@example.com', 'pro', 29.99, 'stripe', NULL, 'expired',
   NULL, now() - interval '100 days', NULL, 1, '{}'),
  (md5('d-cre-2')::uuid, md5('u14')::uuid, 'user14@example.com', 'pro', 29.99, 'stripe', NULL, 'expired',
   NULL, NULL, NULL, 1, '{}'),
  -- checkout_expiry_invalid (4): no expiry, and an expiry not after creation
  (md5('d-exp-1')::uuid, md5('u15')::uuid, 'user15@example.com', 'pro', 29.99, 'stripe', NULL, 'expired',
   now() - interval '110 days', NULL, NULL, 1, '{}'),
  (md5('d-exp-2')::uuid, md5('u16')::uuid, 'user16@example.com', 'pro', 29.99, 'stripe', NULL, 'expired',
   now() - interval '111 days', NULL, NULL, 1, '{}'),
  (md5('d-exp-3')::uuid, md5('u17')::uuid, 'user17@example.com', 'pro', 29.99, 'stripe', NULL, 'expired',
   now() - interval '112 days', now() - interval '112 days', NULL, 1, '{}'),
  (md5('d-exp-4')::uuid, md5('u18')::uuid, 'user18@example.com', 'pro', 29.99, 'stripe', NULL, 'failed',
   now() - interval '113 days', now() - interval '114 days', NULL, 1, '{}'),
  -- checkout_price_not_positive (2)
  (md5('d-price-1')::uuid, md5('u19')::uuid, 'user19@example.com', 'enterprise', 0, 'stripe', NULL, 'failed',
   now() - interval '120 days', now() - interval '119 days', NULL, 1, '{}'),
  (md5('d-price-2')::uuid, md5('u21')::uuid, 'user21@example.com', 'basic', -9.99, 'stripe', NULL, 'expired',
   now() - interval '121 days', now() - interval '120 days', NULL, 1, '{}'),
  -- checkout_pending_duplicate (4 older ones): two users with three pending 'pro' sessions each
  (md5('d-dup-1a')::uuid, md5('u22')::uuid, 'user22@example.com', 'pro', 29.99, 'stripe', NULL, 'pending',
   now() - interval '3 hours', now() + interval '21 hours', NULL, 1, '{}'),
  (md5('d-dup-1b')::uuid, md5('u22')::uuid, 'user22@example.com', 'pro', 29.99, 'stripe', NULL, 'pending',
   now() - interval '2 hours', now() + interval '22 hours', NULL, 1, '{}'),
  (md5('d-dup-1c')::uuid, md5('u22')::uuid, 'user22@example.com', 'pro', 29.99, 'stripe', NULL, 'pending',
   now() - interval '1 hours', now() + interval '23 hours', NULL, 1, '{}'),
  (md5('d-dup-2a')::uuid, md5('u23')::uuid, 'user23@example.com', 'pro', 29.99, 'stripe', NULL, 'pending',
   now() - interval '30 hours', now() - interval '6 hours', NULL, 1, '{}'),
  (md5('d-dup-2b')::uuid, md5('u23')::uuid, 'user23@example.com', 'pro', 29.99, 'stripe', NULL, 'pending',
   now() - interval '30 hours', now() - interval '6 hours', NULL, 1, '{}'),
  (md5('d-dup-2c')::uuid, md5('u23')::uuid, 'user23@example.com', 'pro', 29.99, 'stripe', NULL, 'pending',
   now() - interval '5 hours', now() + interval '19 hours', NULL, 1, '{}'),
  -- checkout_stripe_session_duplicate (2): two Stripe ids on two rows each (the completed one keeps it)
  (md5('d-sdup-1a')::uuid, md5('u24')::uuid, 'user24@example.com', 'basic', 9.99, 'stripe', 'cs_dup_1', 'expired',
   now() - interval '130 days', now() - interval '129 days', NULL, 1, '{}'),
  (md5('d-sdup-1b')::uuid, md5('u24')::uuid, 'user24@example.com', 'basic', 9.99, 'stripe', 'cs_dup_1', 'completed',
   now() - interval '131 days', now() - interval '130 days', now() - interval '131 days' + interval '2 minutes', 1, '{}'),
  (md5('d-sdup-2a')::uuid, md5('u25')::uuid, 'user25@example.com', 'basic', 9.99, 'stripe', 'cs_dup_2', 'expired',
   now() - interval '132 days', now() - interval '131 days', NULL, 1, '{}'),
  (md5('d-sdup-2b')::uuid, md5('u25')::uuid, 'user25@example.com', 'basic', 9.99, 'stripe', 'cs_dup_2', 'failed',
   now() - interval '133 days', now() - interval '132 days', NULL, 1, '{}'),
  -- checkout_plan_unknown (5): a retired plan, and one spelled outside the catalogue's code format
  (md5('d-plan-1')::uuid, md5('u26')::uuid, 'user26@example.com', 'legacy-gold', 49.00, 'stripe', NULL, 'completed',
   now() - interval '300 days', now() - interval '299 days', now() - interval '300 days' + interval '3 minutes', 1, '{}'),
  (md5('d-plan-2')::uuid, md5('u27')::uuid, 'user27@example.com', 'legacy-gold', 49.00, 'stripe', NULL, 'expired',
   now() - interval '301 days', now() - interval '300 days', NULL, 1, '{}'),
  (md5('d-plan-3')::uuid, md5('u28')::uuid, 'user28@example.com', 'legacy-gold', 0, 'stripe', NULL, 'expired',
   now() - interval '302 days', now() - interval '301 days', NULL, 1, '{}'),
  (md5('d-plan-4')::uuid, md5('u29')::uuid, 'user29@example.com', 'Team Plan', 199.00, 'stripe', NULL, 'expired',
   now() - interval '303 days', now() - interval '302 days', NULL, 1, '{}'),
  (md5('d-plan-5')::uuid, md5('u31')::uuid, 'user31@example.com', 'Team Plan', 199.00, 'stripe', NULL, 'failed',
   now() - interval '304 days', now() - interval '303 days', NULL, 1, '{}'),
  -- checkout_user_missing (3 sessions of 2 users deleted by hand)
  (md5('d-orphan-1')::uuid, md5('gone-1')::uuid, 'gone1@example.com', 'basic', 9.99, 'stripe', NULL, 'expired',
   now() - interval '200 days', now() - interval '199 days', NULL, 1, '{}'),
  (md5('d-orphan-2')::uuid, md5('gone-1')::uuid, 'gone1-new@example.com', 'basic', 9.99, 'stripe', NULL, 'expired',
   now() - interval '150 days', now() - interval '149 days', NULL, 1, '{}'),
  (md5('d-orphan-3')::uuid, md5('gone-2')::uuid, 'gone2@example.com', 'pro', 29.99, 'stripe', 'cs_d_orphan_3', 'completed',
   now() - interval '210 days', now() - interval '209 days', now() - interval '210 days' + interval '1 minute', 1, '{}'),
  -- checkout_attempts_invalid (3)
  (md5('d-att-1')::uuid, md5('u32')::uuid, 'user32@example.com', 'basic', 9.99, 'stripe', NULL, 'expired',
   now() - interval '220 days', now() - interval '219 days', NULL, NULL, '{}'),
  (md5('d-att-2')::uuid, md5('u33')::uuid, 'user33@example.com', 'basic', 9.99, 'stripe', NULL, 'expired',
   now() - interval '221 days', now() - interval '220 days', NULL, NULL, '{}'),
  (md5('d-att-3')::uuid, md5('u34')::uuid, 'user34@example.com', 'basic', 9.99, 'stripe', NULL, 'expired',
   now() - interval '222 days', now() - interval '221 days', NULL, -1, '{}');

-- users: missing e-mail, statuses the project does not know, plans outside the catalogue.
UPDATE users SET email = NULL WHERE id IN (md5('u35')::uuid, md5('u36')::uuid);
UPDATE users SET subscription_status = 'trialing' WHERE id = md5('u37')::uuid;
UPDATE users SET subscription_status = 'ACTIVE' WHERE id = md5('u38')::uuid;
UPDATE users SET subscription_status = NULL WHERE id = md5('u39')::uuid;
UPDATE users SET subscription_plan = 'legacy-gold', subscription_status = 'active' WHERE id = md5('u26')::uuid;
UPDATE users SET subscription_plan = 'Partner' WHERE id = md5('u41')::uuid;

-- webhook_events: a year of deliveries, then events without an id, redelivered ids, and missing fields.
INSERT INTO webhook_events (stripe_event_id, topic, payload, created_at)
SELECT 'evt_' || i, (ARRAY['checkout.session.completed', 'checkout.session.expired', 'invoice.paid'])[1 + i %% 3],
       jsonb_build_object('id', 'evt_' || i, 'type', (ARRAY['checkout.session.completed', 'checkout.session.expired', 'invoice.paid'])[1 + i %% 3]),
       now() - interval '365 days' + (i::float8 / %(events)s) * interval '364 days'
  FROM generate_series(1, %(events)s) AS i;
INSERT INTO webhook_events (stripe_event_id, topic, payload, created_at) VALUES
  (NULL, 'checkout.session.completed', '{"id": "evt_noid_1", "type": "checkout.session.completed"}', now() - interval '5 days'),
  (NULL, 'checkout.session.completed', '{"type": "checkout.session.completed"}', now() - interval '5 days'),
  ('evt_1', 'checkout.session.expired', '{"id": "evt_1", "type": "checkout.session.expired"}', now() - interval '4 days'),
  ('evt_2', 'checkout.session.expired', '{"id": "evt_2", "type": "checkout.session.expired"}', now() - interval '4 days'),
  ('evt_nopayload', 'invoice.paid', NULL, now() - interval '3 days'),
  ('evt_notopic', NULL, '{"id": "evt_notopic"}', now() - interval '3 days'),
  ('evt_notime', 'invoice.paid', '{"id": "evt_notime"}', NULL);

-- error_logs: what support queries by category; a few rows without one or without a message.
INSERT INTO error_logs (category, message, created_at)
SELECT (ARRAY['database', 'stripe', 'webhook'])[1 + i %% 3], 'error ' || i,
       now() - interval '365 days' + (i::float8 / %(errors)s) * interval '364 days'
  FROM generate_series(1, %(errors)s) AS i;
INSERT INTO error_logs (category, message, created_at) VALUES
  (NULL, 'no category', now() - interval '2 days'),
  ('database', NULL, now() - interval '2 days'),
  ('stripe', 'no time', NULL);
