-- Resolves sql/tests/checkout_user_missing.sql: the missing user is added back (id from the sessions, email
-- of the newest one, subscription 'inactive', created when the first session was), so no session is lost to
-- the foreign key. The added users are logged with before = NULL. On Supabase a user is an auth.users
-- account, which adoption cannot make: there the sessions are deleted as the account's deletion would have
-- (ON DELETE CASCADE), each with its before-image in runner_adoption_log.
{% import "adopt/macros.sql" as a %}
{% import "macros/common.sql" as m %}
{% if settings.platform == "supabase" %}
WITH offending AS (
  {{ a.offending("checkout_user_missing", "uuid") }}
), gone AS (
  DELETE FROM {{ m.q("payment_checkout_sessions") }} s
   WHERE s.id IN (SELECT id FROM offending)
  RETURNING s.id, to_jsonb(s) AS before
), logged AS (
  INSERT INTO {{ m.q("runner_adoption_log") }} (table_name, row_id, rule, before, after)
  SELECT 'payment_checkout_sessions', g.id::text, 'checkout_user_missing', g.before, NULL::jsonb FROM gone g
  RETURNING 1
)
{{ a.batch_result() }}
{% else %}
WITH offending AS (
  {{ a.offending("checkout_user_missing", "uuid", "failing.id, failing.user_id") }}
), added AS (
  INSERT INTO {{ m.q("users") }} (id, email, subscription_status, created_at)
  SELECT u.user_id,
         (SELECT c.email FROM {{ m.q("payment_checkout_sessions") }} c
           WHERE c.user_id = u.user_id ORDER BY c.created_at DESC NULLS LAST, c.id DESC LIMIT 1),
         'inactive',
         coalesce((SELECT min(c.created_at) FROM {{ m.q("payment_checkout_sessions") }} c WHERE c.user_id = u.user_id),
                  now())
    FROM (SELECT DISTINCT user_id FROM offending) u
  ON CONFLICT (id) DO NOTHING
  RETURNING id, to_jsonb({{ m.q("users") }}.*) AS after
), logged AS (
  INSERT INTO {{ m.q("runner_adoption_log") }} (table_name, row_id, rule, before, after)
  SELECT 'users', a.id::text, 'checkout_user_missing', NULL, a.after FROM added a
  RETURNING 1
)
{{ a.batch_result() }}
{% endif %}
