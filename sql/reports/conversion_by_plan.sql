-- report: conversion_by_plan
-- description: Conversion rate per plan over the last N days (the reference's "What's the conversion rate by plan?").
-- param: days integer default 30 min 1 max 3650 -- sessions created in the last N days
--
-- conversion_rate is a percentage rounded to 2 decimals; a plan without sessions in the window has no row.
{% import "macros/common.sql" as m %}
WITH per_plan AS (
  SELECT subscription_plan,
         sum(sessions)::bigint AS sessions,
         coalesce(sum(sessions) FILTER (WHERE status = 'completed'), 0)::bigint AS completed
    FROM {{ m.q("checkout_session_stats_since") }}(now() - make_interval(days => %(days)s::integer))
   GROUP BY subscription_plan
)
SELECT subscription_plan, sessions, completed,
       round(completed * 100.0 / NULLIF(sessions, 0), 2) AS conversion_rate
  FROM per_plan
 ORDER BY conversion_rate DESC NULLS LAST, subscription_plan;
