-- report: abandonment_age
-- description: How long pending sessions of the last N days have been waiting, in minutes (the reference's "Average time before abandonment").
-- param: days integer default 7 min 1 max 3650 -- pending sessions created in the last N days
--
-- avg_minutes is the reference's expression exactly; NULL (not an error) when nothing is pending.
{% import "macros/common.sql" as m %}
SELECT count(*) AS pending_sessions,
       AVG(EXTRACT(EPOCH FROM (NOW() - created_at)) / 60) AS avg_minutes,
       round(max(EXTRACT(EPOCH FROM (NOW() - created_at)) / 60), 2) AS max_minutes
  FROM {{ m.q("payment_checkout_sessions") }}
 WHERE status = 'pending'
   AND created_at > NOW() - make_interval(days => %(days)s::integer);
