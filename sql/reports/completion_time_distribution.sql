-- report: completion_time_distribution
-- description: Completed sessions of the last N days by how long payment took (under a minute ... over a day): the dashboard's time-to-complete chart.
-- param: days integer default 30 min 1 max 3650 -- sessions created in the last N days
--
-- Every band is listed, empty ones with 0, in order of duration. Reads the checkout_session_rollup-free
-- covering index idx_payment_checkout_sessions_completed.
{% import "macros/common.sql" as m %}
WITH bands (position, band, upper_seconds) AS (
  VALUES (1, '< 1 min', 60), (2, '1-5 min', 300), (3, '5-15 min', 900), (4, '15-60 min', 3600),
         (5, '1-6 h', 21600), (6, '6-24 h', 86400), (7, '> 24 h', NULL)
),
done AS (
  SELECT EXTRACT(EPOCH FROM (completed_at - created_at)) AS seconds
    FROM {{ m.q("payment_checkout_sessions") }}
   WHERE status = 'completed'
     AND created_at > now() - make_interval(days => %(days)s::integer)
),
placed AS (
  SELECT CASE WHEN seconds < 60 THEN 1 WHEN seconds < 300 THEN 2 WHEN seconds < 900 THEN 3
              WHEN seconds < 3600 THEN 4 WHEN seconds < 21600 THEN 5 WHEN seconds < 86400 THEN 6
              ELSE 7 END AS position
    FROM done
)
SELECT b.band, count(p.position) AS sessions,
       round(count(p.position) * 100.0 / NULLIF(sum(count(p.position)) OVER (), 0), 2) AS share
  FROM bands b LEFT JOIN placed p USING (position)
 GROUP BY b.position, b.band
 ORDER BY b.position;
