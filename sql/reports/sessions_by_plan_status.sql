-- report: sessions_by_plan_status
-- description: Sessions per plan and status (all of them, or those created in the last N days): what /metrics exports as checkout_sessions.
-- param: days integer default none min 1 max 3650 -- only sessions created in the last N days (default: all)
{% import "macros/common.sql" as m %}
SELECT subscription_plan, status, sessions
  FROM {{ m.q("checkout_session_counts") }}(now() - make_interval(days => %(days)s::integer))
 ORDER BY subscription_plan, status;
