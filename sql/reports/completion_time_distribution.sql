-- report: completion_time_distribution
-- description: Sessions of the last N days that completed, by how long payment took (under a minute ... a day or more): the dashboard's time-to-complete chart.
-- param: days integer default 30 min 1 max 3650 -- sessions created in the last N days
--
-- Every band is listed, empty ones with 0, shortest first; share is a percentage (2 decimals). Reads the
-- completion bands of checkout_session_rollup (see checkout_completion_band()).
{% import "macros/common.sql" as m %}
WITH totals AS (
  SELECT coalesce(sum(completed_1m), 0)::bigint AS b1, coalesce(sum(completed_5m), 0)::bigint AS b2,
         coalesce(sum(completed_15m), 0)::bigint AS b3, coalesce(sum(completed_1h), 0)::bigint AS b4,
         coalesce(sum(completed_6h), 0)::bigint AS b5, coalesce(sum(completed_24h), 0)::bigint AS b6,
         coalesce(sum(completed_more), 0)::bigint AS b7
    FROM {{ m.q("checkout_session_stats_since") }}(now() - make_interval(days => %(days)s::integer))
   WHERE status = 'completed'
), bands (position, band, sessions) AS (
  SELECT v.* FROM totals, LATERAL (VALUES (1, '< 1 min', b1), (2, '1-5 min', b2), (3, '5-15 min', b3),
                                        (4, '15-60 min', b4), (5, '1-6 h', b5), (6, '6-24 h', b6),
                                        (7, '> 24 h', b7)) AS v (position, band, sessions)
)
SELECT band, sessions, round(sessions * 100.0 / NULLIF(sum(sessions) OVER (), 0), 2) AS share
  FROM bands
 ORDER BY position;
