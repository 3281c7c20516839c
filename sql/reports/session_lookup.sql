-- report: session_lookup
-- description: Support's lookup of one checkout: by any Stripe session it ever had (a cs_... from a customer's email or Stripe's dashboard, replaced ones too), by its id, or every checkout of an email; live or archived, with its metadata and all its Stripe sessions.
-- param: stripe_session_id text default none -- a Stripe Checkout Session id (current or replaced)
-- param: session_id text default none -- a checkout session id (uuid)
-- param: email text default none -- every checkout of this email address (case-insensitive)
-- param: limit integer default 50 min 1 max 10000 -- at most this many rows
--
-- payment_checkout_stripe_sessions keeps every Stripe session a row had (docs/audit-trail.md); archived rows
-- are in payment_checkout_sessions_archive. Without a parameter, no row.
{% import "macros/common.sql" as m %}
WITH wanted AS (
  SELECT h.checkout_session_id AS id
    FROM {{ m.q("payment_checkout_stripe_sessions") }} h
   WHERE h.stripe_session_id = %(stripe_session_id)s::text
  UNION
  SELECT s.id FROM {{ m.q("payment_checkout_sessions") }} s WHERE s.stripe_session_id = %(stripe_session_id)s::text
  UNION
  SELECT s.id FROM {{ m.q("payment_checkout_sessions") }} s
   WHERE s.id = CASE WHEN %(session_id)s::text ~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
                     THEN %(session_id)s::text::uuid END
      OR lower(s.email) = lower(%(email)s::text)
  UNION
  SELECT a.id FROM {{ m.q("payment_checkout_sessions_archive") }} a
   WHERE a.id = CASE WHEN %(session_id)s::text ~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
                     THEN %(session_id)s::text::uuid END
      OR lower(a.email) = lower(%(email)s::text)
      OR a.stripe_session_id = %(stripe_session_id)s::text
), found AS (
  SELECT s.id, s.user_id, s.email, s.subscription_plan, s.plan_price, s.currency, s.status, s.attempts,
         s.stripe_session_id, s.created_at, s.completed_at, s.metadata, FALSE AS archived
    FROM {{ m.q("payment_checkout_sessions") }} s JOIN wanted w USING (id)
  UNION ALL
  SELECT a.id, a.user_id, a.email, a.subscription_plan, a.plan_price, a.currency, a.status, a.attempts,
         a.stripe_session_id, a.created_at, a.completed_at, a.metadata, TRUE
    FROM {{ m.q("payment_checkout_sessions_archive") }} a JOIN wanted w USING (id)
)
SELECT f.id, f.user_id, f.email, f.subscription_plan, f.plan_price, f.currency, f.status, f.attempts,
       f.stripe_session_id AS current_stripe_session_id,
       (SELECT coalesce(string_agg(h.stripe_session_id, ' ' ORDER BY h.linked_at, h.stripe_session_id), '')
          FROM {{ m.q("payment_checkout_stripe_sessions") }} h WHERE h.checkout_session_id = f.id)
         AS stripe_session_ids,
       f.metadata, f.archived, f.created_at, f.completed_at
  FROM found f
 ORDER BY f.created_at DESC, f.id
 LIMIT %(limit)s::integer;
