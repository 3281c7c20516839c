-- report: abandonment_by_plan
-- description: Sessions per plan and how many are abandoned (the reference's "Abandonment by plan"), highest abandonment first.
-- param: days integer default none min 1 max 3650 -- only sessions created in the last N days (default: all)
--
-- abandoned is the reference's count of sessions still pending; expired ones (pending that the expire
-- job closed) are counted apart. abandonment_rate is the share not completed, in percent (2 decimals).
{% import "macros/common.sql" as m %}
WITH per_plan AS (
  SELECT subscription_plan,
         sum(sessions)::bigint AS total,
         coalesce(sum(sessions) FILTER (WHERE status = 'pending'), 0)::bigint AS abandoned,
         coalesce(sum(sessions) FILTER (WHERE status = 'expired'), 0)::bigint AS expired,
         coalesce(sum(sessions) FILTER (WHERE status = 'completed'), 0)::bigint AS completed
    FROM {{ m.q("checkout_session_counts") }}(now() - make_interval(days => %(days)s::integer))
   GROUP BY subscription_plan
)
SELECT subscription_plan, total, abandoned, expired, completed,
       round((total - completed) * 100.0 / NULLIF(total, 0), 2) AS abandonment_rate
  FROM per_plan
 ORDER BY abandonment_rate DESC NULLS LAST, subscription_plan;
