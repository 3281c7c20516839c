-- report: weekly_report
-- description: Per day: sessions, completed, pending, expired and conversion rate, newest day first (the reference's "Weekly Report").
-- param: days integer default 7 min 1 max 3650 -- sessions created in the last N days
--
-- Days are calendar days in the session's time zone (the reference's DATE(created_at)); a day without
-- sessions has no row. conversion_rate is a percentage rounded to 2 decimals, as in the reference.
{% import "macros/common.sql" as m %}
WITH per_day AS (
  SELECT bucket::date AS date,
         sum(sessions)::bigint AS total_sessions,
         coalesce(sum(sessions) FILTER (WHERE status = 'completed'), 0)::bigint AS completed,
         coalesce(sum(sessions) FILTER (WHERE status = 'pending'), 0)::bigint AS pending,
         coalesce(sum(sessions) FILTER (WHERE status = 'expired'), 0)::bigint AS expired,
         coalesce(sum(sessions) FILTER (WHERE status IN ('canceled', 'failed')), 0)::bigint AS canceled_or_failed
    FROM {{ m.q("checkout_session_stats_since") }}(now() - make_interval(days => %(days)s::integer))
   GROUP BY 1
)
SELECT date, total_sessions, completed, pending, expired, canceled_or_failed,
       round(completed * 100.0 / NULLIF(total_sessions, 0), 2) AS conversion_rate
  FROM per_day
 ORDER BY date DESC;
