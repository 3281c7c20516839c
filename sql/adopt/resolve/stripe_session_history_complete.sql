-- Resolves sql/tests/stripe_session_history_complete.sql where a live row's Stripe session has no history
-- row at all: a link made by the app between V070's backfill and the trigger that records links (installed
-- by sql/functions/stripe_session_history.sql a few files later in the same adoption). The missing history
-- row is added as the backfill adds them, logged with before = NULL. A history row of another checkout
-- session is left for a person to judge.
{% import "adopt/macros.sql" as a %}
{% import "macros/common.sql" as m %}
WITH offending AS (
  {{ a.offending("stripe_session_history_complete", "uuid") }}
), added AS (
  INSERT INTO {{ m.q("payment_checkout_stripe_sessions") }} (stripe_session_id, checkout_session_id, user_id, linked_at)
  SELECT s.stripe_session_id, s.id, s.user_id, least(s.updated_at, now())
    FROM {{ m.q("payment_checkout_sessions") }} s
   WHERE s.id IN (SELECT id FROM offending) AND s.stripe_session_id IS NOT NULL
  ON CONFLICT (stripe_session_id) DO NOTHING
  RETURNING stripe_session_id, to_jsonb({{ m.q("payment_checkout_stripe_sessions") }}.*) AS after
), logged AS (
  INSERT INTO {{ m.q("runner_adoption_log") }} (table_name, row_id, rule, before, after)
  SELECT 'payment_checkout_stripe_sessions', a.stripe_session_id, 'stripe_session_history_complete', NULL, a.after
    FROM added a
  RETURNING 1
)
{{ a.batch_result() }}
