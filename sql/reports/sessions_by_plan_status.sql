-- report: sessions_by_plan_status
-- description: Sessions per plan and status (all of them, or those created in the last N days): what /metrics exports as checkout_sessions.
-- param: days integer default none min 1 max 3650 -- only sessions created in the last N days (default: all)
{% import "macros/common.sql" as m %}
SELECT subscription_plan, status, sum(sessions)::bigint AS sessions
  FROM (-- all time: the per-plan totals; a window: hour by hour
        SELECT t.subscription_plan, t.status, t.sessions FROM {{ m.q("checkout_session_totals") }}() t
         WHERE %(days)s::integer IS NULL
        UNION ALL
        SELECT w.subscription_plan, w.status, w.sessions
          FROM {{ m.q("checkout_session_stats_since") }}(now() - make_interval(days => %(days)s::integer)) w
         WHERE %(days)s::integer IS NOT NULL) AS s
 GROUP BY subscription_plan, status
 ORDER BY subscription_plan, status;
