-- report: sessions_by_status
-- description: How many sessions of the last N days are in each status (the reference's "Sessions by status").
-- param: days integer default 7 min 1 max 3650 -- sessions created in the last N days
--
-- share is the status's percentage of the window's sessions, rounded to 2 decimals.
{% import "macros/common.sql" as m %}
WITH per_status AS (
  SELECT status, sum(sessions)::bigint AS count
    FROM {{ m.q("checkout_session_stats_since") }}(now() - make_interval(days => %(days)s::integer))
   GROUP BY status
)
SELECT status, count, round(count * 100.0 / NULLIF(sum(count) OVER (), 0), 2) AS share
  FROM per_status
 ORDER BY count DESC, status;
