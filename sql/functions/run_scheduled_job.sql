-- depends: job_runs, expire_old_checkout_sessions, archive_completed_checkout_sessions, checkout_session_rollup
-- The jobs that need no outside service (expire, cleanup, rollup), as one SQL call each: what pg_cron runs
-- (`runner schedule --pg-cron`, runner/jobs/pg_cron.py), and what anyone may run from psql.
--
-- Like `runner job NAME`: it takes the job's advisory lock without waiting (the same key as runner/locks.py's
-- JOB_LOCKS, so a run from cron and one from pg_cron never overlap: the second is recorded as skipped), and it
-- records the run in job_runs (start_job_run / finish_job_run / record_skipped_job_run). Unlike it, the whole
-- run is one transaction (pg_cron runs one statement): the lock is transaction-scoped, and a failure is
-- recorded as failed with nothing of the run kept, and reported as a WARNING rather than an error (an error
-- would roll back the record too).
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("run_scheduled_job") }}(p_job TEXT)
RETURNS TEXT
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_key     INTEGER;
  v_client  TEXT := left(coalesce(nullif(current_setting('application_name', true), ''), 'sql')
                           || ' (run_scheduled_job)', 200);
  v_run     BIGINT;
  v_batch   INTEGER;
  v_n       BIGINT;
  v_rows    BIGINT := 0;
  v_batches INTEGER := 0;
  v_folded  BIGINT := 0;
  v_details JSONB;
  v_state   TEXT;
  v_message TEXT;
BEGIN
  v_key := CASE p_job
             WHEN 'expire' THEN {{ locks.jobs["expire"] }}
             WHEN 'cleanup' THEN {{ locks.jobs["cleanup"] }}
             WHEN 'rollup' THEN {{ locks.jobs["rollup"] }}
           END;
  IF v_key IS NULL THEN
    RAISE EXCEPTION 'p_job must be expire, cleanup or rollup, got %', coalesce(quote_literal(left(p_job, 60)), 'NULL')
      USING ERRCODE = '22023',
            HINT = 'remind and send-email need the outside world (SMTP): run them with `runner job`.';
  END IF;

  IF NOT pg_catalog.pg_try_advisory_xact_lock({{ locks.lock_class }}, v_key) THEN
    PERFORM record_skipped_job_run(p_job, 'another run of this job holds its lock', v_client);
    RETURN p_job || ': skipped: another run of this job holds its lock';
  END IF;
  SELECT s.run_id INTO v_run FROM start_job_run(p_job, v_client) s;

  BEGIN
    -- Bounded statements, as `runner job` runs them (its default batch sizes), until one comes back short.
    IF p_job = 'expire' THEN
      v_batch := 10000;
      LOOP
        v_n := expire_old_checkout_sessions(v_batch);
        v_rows := v_rows + v_n;
        v_batches := v_batches + 1;
        EXIT WHEN v_n < v_batch;
      END LOOP;
    ELSIF p_job = 'cleanup' THEN
      v_batch := 1000;
      LOOP
        v_n := archive_completed_checkout_sessions(v_batch, {{ settings.retention_days }});
        v_rows := v_rows + v_n;
        v_batches := v_batches + 1;
        EXIT WHEN v_n < v_batch;
      END LOOP;
    END IF;
    -- Every job leaves the rollup compact: expire and cleanup append deltas; rollup is only this.
    LOOP
      v_n := fold_checkout_session_rollup(100000);
      v_folded := v_folded + v_n;
      IF p_job = 'rollup' THEN
        v_rows := v_rows + v_n;
        v_batches := v_batches + 1;
      END IF;
      EXIT WHEN v_n < 100000;
    END LOOP;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
    v_message := format('[SQLSTATE %s] %s', v_state, v_message);
    PERFORM finish_job_run(v_run, 'failed', 0, 0, v_message,
                           jsonb_build_object('in_database', true, 'rolled_back', true));
    RAISE WARNING 'job % failed (recorded in job_runs, id %): %', p_job, v_run, v_message;
    RETURN p_job || ': failed: ' || v_message;
  END;

  v_details := jsonb_build_object('in_database', true, 'batch_size', v_batch);
  IF p_job <> 'rollup' THEN
    v_details := v_details || jsonb_build_object('rollup_deltas_folded', v_folded);
  ELSE
    v_details := jsonb_build_object('in_database', true, 'batch_size', 100000);
  END IF;
  PERFORM finish_job_run(v_run, 'succeeded', v_rows, v_batches, NULL, v_details);
  RETURN format('%s: %s rows in %s batch(es)', p_job, v_rows, v_batches);
END;
$$;

COMMENT ON FUNCTION {{ m.q("run_scheduled_job") }}(TEXT) IS
  'Runs job expire, cleanup or rollup once, in this transaction, under the job''s advisory lock, recorded in '
  'job_runs (skipped when another run holds the lock; failed with a WARNING when the work fails); returns its '
  'summary line. What runner schedule --pg-cron schedules. Raises 22023 for another job name.';
