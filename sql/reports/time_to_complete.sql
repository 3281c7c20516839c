-- report: time_to_complete
-- description: Minutes from checkout start to payment for sessions completed in the last N days: average and percentiles (the reference's "average time to complete payment?").
-- param: days integer default 7 min 1 max 3650 -- sessions created in the last N days
--
-- All figures in minutes, rounded to 2 decimals; NULL when nothing completed. Percentiles are exact
-- (percentile_cont) and read the covering index idx_payment_checkout_sessions_completed.
{% import "macros/common.sql" as m %}
WITH done AS (
  SELECT EXTRACT(EPOCH FROM (completed_at - created_at)) / 60 AS minutes
    FROM {{ m.q("payment_checkout_sessions") }}
   WHERE status = 'completed'
     AND created_at > now() - make_interval(days => %(days)s::integer)
)
SELECT count(*) AS completed,
       round(avg(minutes), 2) AS avg_minutes,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY minutes)::numeric, 2) AS p50_minutes,
       round(percentile_cont(0.9) WITHIN GROUP (ORDER BY minutes)::numeric, 2) AS p90_minutes,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY minutes)::numeric, 2) AS p99_minutes,
       round(max(minutes), 2) AS max_minutes
  FROM done;
