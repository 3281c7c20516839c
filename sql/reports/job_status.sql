-- report: job_status
-- description: Each scheduled job's last run, last success and outcome, from job_runs (what `runner doctor` and /metrics read to tell whether a job is overdue).
{% import "macros/common.sql" as m %}
WITH jobs AS (
  SELECT DISTINCT job FROM {{ m.q("job_runs") }}
)
SELECT j.job,
       last_run.started_at AS last_started_at,
       last_run.outcome AS last_outcome,
       last_run.error AS last_error,
       (SELECT max(finished_at) FROM {{ m.q("job_runs") }} r
         WHERE r.job = j.job AND r.outcome = 'succeeded') AS last_success_at,
       (SELECT min(started_at) FROM {{ m.q("job_runs") }} r
         WHERE r.job = j.job AND r.outcome = 'running') AS running_since,
       (SELECT count(*) FROM {{ m.q("job_runs") }} r
         WHERE r.job = j.job AND r.outcome = 'failed' AND r.started_at > now() - INTERVAL '24 hours') AS failures_24h
  FROM jobs j
  LEFT JOIN LATERAL (
    SELECT started_at, outcome, error FROM {{ m.q("job_runs") }} r
     WHERE r.job = j.job ORDER BY started_at DESC, id DESC LIMIT 1
  ) AS last_run ON TRUE
 ORDER BY j.job;
