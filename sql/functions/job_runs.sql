-- Recording the scheduled jobs' runs in job_runs (runner/jobs/tasks.py): the jobs run as the application role,
-- which may not touch the table itself. `runner job history` reads it through job_run_history.
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("start_job_run") }}(p_job TEXT, p_client TEXT)
RETURNS TABLE (run_id BIGINT, abandoned INTEGER)
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_abandoned INTEGER;
BEGIN
  IF p_job IS NULL OR p_job !~ '^[a-z][a-z0-9_-]{0,49}$' THEN
    RAISE EXCEPTION 'p_job must be a job name, got %', coalesce(quote_literal(left(p_job, 60)), 'NULL')
      USING ERRCODE = '22023';
  END IF;
  -- The caller holds the job's advisory lock: any 'running' row of this job belongs to a run that died
  -- without finishing.
  UPDATE job_runs j
     SET outcome = 'failed', finished_at = now(),
         error = 'abandoned: the run ended without recording an outcome (killed or lost its connection)'
   WHERE j.job = p_job AND j.outcome = 'running';
  GET DIAGNOSTICS v_abandoned = ROW_COUNT;
  RETURN QUERY
  INSERT INTO job_runs AS j (job, client) VALUES (p_job, left(p_client, 200)) RETURNING j.id, v_abandoned;
END;
$$;

COMMENT ON FUNCTION {{ m.q("start_job_run") }}(TEXT, TEXT) IS
  'Marks the job''s unfinished runs failed (abandoned) and records a new running one; returns its id and how '
  'many were abandoned. Call it holding the job''s advisory lock. Raises 22023 for a bad job name.';

CREATE OR REPLACE FUNCTION {{ m.q("finish_job_run") }}(
  p_run_id  BIGINT,
  p_outcome TEXT,
  p_rows    BIGINT,
  p_batches INTEGER,
  p_error   TEXT,
  p_details JSONB
)
RETURNS VOID
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
BEGIN
  IF p_outcome IS NULL OR p_outcome NOT IN ('succeeded', 'failed') THEN
    RAISE EXCEPTION 'p_outcome must be succeeded or failed, got %', coalesce(quote_literal(left(p_outcome, 40)), 'NULL')
      USING ERRCODE = '22023';
  END IF;
  IF p_rows IS NULL OR p_rows < 0 OR p_batches IS NULL OR p_batches < 0 THEN
    RAISE EXCEPTION 'p_rows and p_batches must be 0 or more' USING ERRCODE = '22023';
  END IF;
  UPDATE job_runs j
     SET outcome = p_outcome, finished_at = now(), rows = p_rows, batches = p_batches, error = p_error,
         details = coalesce(p_details, '{}'::jsonb)
   WHERE j.id = p_run_id AND j.outcome = 'running';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'job run % is not running', p_run_id USING ERRCODE = 'P0002';
  END IF;
END;
$$;

COMMENT ON FUNCTION {{ m.q("finish_job_run") }}(BIGINT, TEXT, BIGINT, INTEGER, TEXT, JSONB) IS
  'Records the outcome (succeeded or failed), rows, batches, error and details of a running job run. '
  'Raises 22023 for a bad outcome or count, P0002 when the run is not running.';

CREATE OR REPLACE FUNCTION {{ m.q("record_skipped_job_run") }}(p_job TEXT, p_error TEXT, p_client TEXT)
RETURNS BIGINT
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_id BIGINT;
BEGIN
  IF p_job IS NULL OR p_job !~ '^[a-z][a-z0-9_-]{0,49}$' THEN
    RAISE EXCEPTION 'p_job must be a job name, got %', coalesce(quote_literal(left(p_job, 60)), 'NULL')
      USING ERRCODE = '22023';
  END IF;
  INSERT INTO job_runs (job, outcome, finished_at, error, client)
  VALUES (p_job, 'skipped', now(), p_error, left(p_client, 200))
  RETURNING id INTO v_id;
  RETURN v_id;
END;
$$;

COMMENT ON FUNCTION {{ m.q("record_skipped_job_run") }}(TEXT, TEXT, TEXT) IS
  'Records a run that was skipped because another run of the job held its lock; returns its id.';

CREATE OR REPLACE FUNCTION {{ m.q("job_run_history") }}(p_job TEXT DEFAULT NULL, p_limit INTEGER DEFAULT 20)
RETURNS TABLE (id BIGINT, job VARCHAR, started_at TIMESTAMP WITH TIME ZONE, finished_at TIMESTAMP WITH TIME ZONE,
               seconds DOUBLE PRECISION, outcome VARCHAR, rows BIGINT, batches INTEGER, error TEXT, details JSONB,
               client TEXT)
LANGUAGE plpgsql STABLE
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
BEGIN
  {{ m.require_positive("p_limit") }}
  RETURN QUERY
  SELECT j.id, j.job, j.started_at, j.finished_at, extract(epoch FROM j.finished_at - j.started_at)::float8,
         j.outcome, j.rows, j.batches, j.error, j.details, j.client
    FROM job_runs j
   WHERE p_job IS NULL OR j.job = p_job
   ORDER BY j.started_at DESC, j.id DESC
   LIMIT p_limit;
END;
$$;

COMMENT ON FUNCTION {{ m.q("job_run_history") }}(TEXT, INTEGER) IS
  'The latest p_limit runs (of job p_job, or of all jobs), newest first, with their duration in seconds.';

