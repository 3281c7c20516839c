-- report: conversion_rate
-- description: Share of checkout sessions created in the last N days that completed (the reference's "Conversion rate").
-- param: days integer default 30 min 1 max 3650 -- window: sessions created in the last N days
--
-- conversion_rate is a percentage with the reference's arithmetic (completed * 100.0 / sessions), NULL
-- when there were no sessions. Reads checkout_session_rollup plus the window's partial first hour.
{% import "macros/common.sql" as m %}
WITH totals AS (
  SELECT coalesce(sum(sessions), 0)::bigint AS sessions,
         coalesce(sum(sessions) FILTER (WHERE status = 'completed'), 0)::bigint AS completed
    FROM {{ m.q("checkout_session_stats_since") }}(now() - make_interval(days => %(days)s::integer))
)
SELECT %(days)s::integer AS days,
       sessions,
       completed,
       completed * 100.0 / NULLIF(sessions, 0) AS conversion_rate
  FROM totals;
