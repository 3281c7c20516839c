-- report: rollup_check
-- description: Hours of the last N hours where checkout_session_rollup (with its unfolded deltas) differs from payment_checkout_sessions (none expected; fix with SELECT rebuild_checkout_session_rollup()).
-- param: hours integer default 24 min 1 max 87600 -- compare the hours of sessions created in the last N hours
{% import "macros/common.sql" as m %}
-- The window's start is written out in both places, not joined from a CTE: a plain condition on bucket
-- is pushed down through the view's GROUP BY into the rollup's key range (a CTE join made the view
-- aggregate every hour first: 113 ms at 10M sessions).
WITH raw AS (
  SELECT {{ m.q("checkout_rollup_bucket") }}(created_at) AS bucket, subscription_plan, status,
         count(*) AS sessions, sum(attempts) AS attempts
    FROM {{ m.q("payment_checkout_sessions") }}
   WHERE created_at >= {{ m.q("checkout_rollup_bucket") }}(now() - make_interval(hours => %(hours)s::integer))
   GROUP BY 1, 2, 3
), rolled AS (
  SELECT bucket, subscription_plan, status, sessions, attempts
    FROM {{ m.q("checkout_session_rollup_current") }}
   WHERE bucket >= {{ m.q("checkout_rollup_bucket") }}(now() - make_interval(hours => %(hours)s::integer))
)
SELECT bucket, subscription_plan, status,
       coalesce(raw.sessions, 0) AS table_sessions, coalesce(rolled.sessions, 0) AS rollup_sessions
  FROM raw FULL JOIN rolled USING (bucket, subscription_plan, status)
 WHERE raw.sessions IS DISTINCT FROM rolled.sessions OR raw.attempts IS DISTINCT FROM rolled.attempts
 ORDER BY bucket, subscription_plan, status;
