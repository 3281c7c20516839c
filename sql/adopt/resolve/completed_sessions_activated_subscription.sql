-- Resolves sql/tests/completed_sessions_activated_subscription.sql for users the reference's system never
-- gave a subscribed_at (it had no such column) or left without a plan or 'inactive' after a payment: the
-- user's newest completed session gives subscribed_at (its completed_at) and the plan when there is none;
-- an 'inactive' user becomes 'canceled' (a subscription existed and is not active now: no access is granted
-- that the old system did not give). Logged per user.
{% import "adopt/macros.sql" as a %}
{% import "macros/common.sql" as m %}
WITH offending AS (
  -- The users of sql/tests/completed_sessions_activated_subscription.sql's rows (the same condition, per user
  -- in id order: a batch reads its users and their sessions by index, not every completed session).
  SELECT u.id AS user_id
    FROM {{ m.q("users") }} u
   WHERE (%(after)s::uuid IS NULL OR u.id > %(after)s::uuid)
     AND (u.subscription_status = 'inactive' OR u.subscription_plan IS NULL OR u.subscribed_at IS NULL)
     AND EXISTS (SELECT 1 FROM {{ m.q("payment_checkout_sessions") }} s
                  WHERE s.user_id = u.id AND s.status = 'completed')
   ORDER BY u.id
   LIMIT %(batch)s
), target AS (
  SELECT u.id, to_jsonb(u) AS before
    FROM {{ m.q("users") }} u
   WHERE u.id IN (SELECT user_id FROM offending)
     FOR UPDATE OF u
), latest AS (
  SELECT DISTINCT ON (s.user_id) s.user_id, s.subscription_plan, s.completed_at
    FROM {{ m.q("payment_checkout_sessions") }} s
   WHERE s.user_id IN (SELECT id FROM target) AND s.status = 'completed'
   ORDER BY s.user_id, s.completed_at DESC NULLS LAST, s.id DESC
), changed AS (
  UPDATE {{ m.q("users") }} u
     SET subscription_status = CASE WHEN u.subscription_status = 'inactive' THEN 'canceled' ELSE u.subscription_status END,
         subscription_plan = coalesce(u.subscription_plan, l.subscription_plan),
         subscribed_at = coalesce(u.subscribed_at, l.completed_at)
    FROM target t, latest l
   WHERE u.id = t.id AND l.user_id = u.id
  RETURNING u.id, t.before, to_jsonb(u) AS after
), logged AS (
  INSERT INTO {{ m.q("runner_adoption_log") }} (table_name, row_id, rule, before, after)
  SELECT 'users', c.id::text, 'completed_sessions_activated_subscription', c.before, c.after
    FROM changed c
   WHERE c.before IS DISTINCT FROM c.after
  RETURNING 1
)
{{ a.batch_result("user_id") }}
