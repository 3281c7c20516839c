-- report: daily_health
-- description: Today at a glance (the reference's "Daily Health Check"): sessions today, completion rate today, pending older than an hour.
-- param: pending_age interval default 1 hour -- a pending session older than this counts in pending_over_age
-- param: expiry_grace interval default 0 minutes -- pending_past_expiry counts sessions this long past expires_at
--
-- "Today" starts at midnight in the session's time zone (the reference's created_at > CURRENT_DATE).
-- completion_rate_today is NULL when no session was created today. pending_past_expiry counts pending
-- sessions whose expires_at passed (more than expiry_grace ago): the expire job is behind when it is not 0.
{% import "macros/common.sql" as m %}
WITH today AS (
  SELECT coalesce(sum(sessions), 0)::bigint AS sessions,
         coalesce(sum(sessions) FILTER (WHERE status = 'completed'), 0)::bigint AS completed
    FROM {{ m.q("checkout_session_stats_since") }}(CURRENT_DATE)
)
SELECT today.sessions AS sessions_today,
       today.completed AS completed_today,
       today.completed * 100.0 / NULLIF(today.sessions, 0) AS completion_rate_today,
       (SELECT count(*) FROM {{ m.q("payment_checkout_sessions") }}
         WHERE status = 'pending' AND created_at < now() - %(pending_age)s::interval) AS pending_over_age,
       (SELECT count(*) FROM {{ m.q("payment_checkout_sessions") }}
         WHERE status = 'pending' AND expires_at < now() - %(expiry_grace)s::interval) AS pending_past_expiry
  FROM today;
