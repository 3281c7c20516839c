-- report: retry_stats
-- description: How often people come back to a checkout (the reference's "How many users retry payments?"): retried sessions, attempts, and whether retrying ends in payment.
-- param: days integer default 30 min 1 max 3650 -- sessions created in the last N days
--
-- A retry is a return to the same open checkout (attempts > 1; one pending session per user and plan,
-- so each retried session is one user coming back). Rates are percentages rounded to 2 decimals.
{% import "macros/common.sql" as m %}
WITH totals AS (
  SELECT coalesce(sum(sessions), 0)::bigint AS sessions,
         coalesce(sum(retried), 0)::bigint AS retried_sessions,
         coalesce(sum(attempts), 0)::bigint AS attempts,
         coalesce(sum(sessions) FILTER (WHERE status = 'completed'), 0)::bigint AS completed,
         coalesce(sum(retried) FILTER (WHERE status = 'completed'), 0)::bigint AS retried_completed
    FROM {{ m.q("checkout_session_stats_since") }}(now() - make_interval(days => %(days)s::integer))
)
SELECT sessions,
       retried_sessions,
       round(retried_sessions * 100.0 / NULLIF(sessions, 0), 2) AS retry_rate,
       round(attempts::numeric / NULLIF(sessions, 0), 2) AS avg_attempts,
       round(retried_completed * 100.0 / NULLIF(retried_sessions, 0), 2) AS conversion_after_retry,
       round((completed - retried_completed) * 100.0 / NULLIF(sessions - retried_sessions, 0), 2)
         AS conversion_first_try
  FROM totals;
