-- Resolves sql/tests/user_auth_missing.sql (Supabase only): a user with no account in auth.users cannot be
-- kept (users.id references auth.users there, ON DELETE CASCADE, as when the account was deleted), so the
-- user and its checkout sessions are deleted; each deleted row's whole before-image is in
-- runner_adoption_log (after = NULL), from where it can be read or put back.
{% import "adopt/macros.sql" as a %}
{% import "macros/common.sql" as m %}
WITH offending AS (
  {{ a.offending("user_auth_missing", "uuid") }}
), sessions AS (
  DELETE FROM {{ m.q("payment_checkout_sessions") }} s
   WHERE s.user_id IN (SELECT id FROM offending)
  RETURNING s.id, to_jsonb(s) AS before
), gone AS (
  DELETE FROM {{ m.q("users") }} u
   WHERE u.id IN (SELECT id FROM offending)
  RETURNING u.id, to_jsonb(u) AS before
), logged AS (
  INSERT INTO {{ m.q("runner_adoption_log") }} (table_name, row_id, rule, before, after)
  SELECT 'payment_checkout_sessions', s.id::text, 'user_auth_missing', s.before, NULL::jsonb FROM sessions s
  UNION ALL
  SELECT 'users', g.id::text, 'user_auth_missing', g.before, NULL::jsonb FROM gone g
  RETURNING 1
)
{{ a.batch_result() }}
