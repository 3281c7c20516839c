-- report: database_errors
-- description: Database failures the service and the jobs met (error_logs, category database) by source and kind: how many (a row counts a burst), first and last logged, the last message. The reference's "Check database logs", summed.
-- param: hours integer default 24 min 1 max 87600 -- failures logged in the last N hours
--
-- The service and the jobs write one row per kind of failure and burst, with how many times it happened in
-- context.count (runner/error_log.py); a row without a count (written by hand) counts once.
{% import "macros/common.sql" as m %}
SELECT coalesce(e.context ->> 'where', 'unknown') AS source,
       coalesce(e.context ->> 'kind', 'unknown') AS kind,
       e.context ->> 'sqlstate' AS sqlstate,
       count(*) AS log_rows,
       sum(CASE WHEN e.context ->> 'count' ~ '^[0-9]{1,15}$' THEN (e.context ->> 'count')::bigint ELSE 1 END)::bigint
         AS failures,
       min(e.created_at) AS first_logged,
       max(e.created_at) AS last_logged,
       (array_agg(e.message ORDER BY e.created_at DESC, e.id DESC))[1] AS last_message
  FROM {{ m.q("error_logs") }} e
 WHERE e.category = 'database'
   AND e.created_at > now() - make_interval(hours => %(hours)s::integer)
 GROUP BY 1, 2, 3
 ORDER BY failures DESC, source, kind;
