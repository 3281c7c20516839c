-- report: retry_stats
-- description: How often people come back to a checkout (the reference's "How many users retry payments?"): retried sessions, attempts, whether retrying ends in payment, and how many Stripe sessions it took.
-- param: days integer default 30 min 1 max 3650 -- sessions created in the last N days
--
-- A retry is a return to the same open checkout (attempts > 1; one pending session per user and plan,
-- so each retried session is one user coming back). Rates are percentages rounded to 2 decimals.
-- stripe_sessions: Stripe Checkout sessions linked in the window (payment_checkout_stripe_sessions);
-- stripe_sessions_replaced: of them, those replaced by a newer one (the customer came back after it expired).
{% import "macros/common.sql" as m %}
WITH totals AS (
  SELECT coalesce(sum(sessions), 0)::bigint AS sessions,
         coalesce(sum(retried), 0)::bigint AS retried_sessions,
         coalesce(sum(attempts), 0)::bigint AS attempts,
         coalesce(sum(sessions) FILTER (WHERE status = 'completed'), 0)::bigint AS completed,
         coalesce(sum(retried) FILTER (WHERE status = 'completed'), 0)::bigint AS retried_completed
    FROM {{ m.q("checkout_session_stats_since") }}(now() - make_interval(days => %(days)s::integer))
), stripe AS (
  SELECT count(*)::bigint AS stripe_sessions,
         count(*) FILTER (WHERE h.replaced_at IS NOT NULL)::bigint AS stripe_sessions_replaced
    FROM {{ m.q("payment_checkout_stripe_sessions") }} h
   WHERE h.linked_at > now() - make_interval(days => %(days)s::integer)
)
SELECT sessions,
       retried_sessions,
       round(retried_sessions * 100.0 / NULLIF(sessions, 0), 2) AS retry_rate,
       round(attempts::numeric / NULLIF(sessions, 0), 2) AS avg_attempts,
       round(retried_completed * 100.0 / NULLIF(retried_sessions, 0), 2) AS conversion_after_retry,
       round((completed - retried_completed) * 100.0 / NULLIF(sessions - retried_sessions, 0), 2)
         AS conversion_first_try,
       stripe.stripe_sessions,
       stripe.stripe_sessions_replaced
  FROM totals CROSS JOIN stripe;
