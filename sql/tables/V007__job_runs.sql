-- One row per run of a scheduled job (expire, remind, cleanup, send-email): what `runner job history`
-- shows, what `runner doctor` and /metrics read to tell whether a job is overdue.
{% import "macros/common.sql" as m %}
CREATE TABLE {{ m.q("job_runs") }} (
  id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job         VARCHAR(50) NOT NULL,
  started_at  TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
  finished_at TIMESTAMP WITH TIME ZONE,
  rows        BIGINT NOT NULL DEFAULT 0,
  batches     INTEGER NOT NULL DEFAULT 0,
  outcome     VARCHAR(20) NOT NULL DEFAULT 'running',
  error       TEXT,
  details     JSONB NOT NULL DEFAULT '{}'::jsonb,
  client      TEXT,
  CONSTRAINT job_runs_outcome_known CHECK (outcome IN ('running', 'succeeded', 'failed', 'skipped')),
  CONSTRAINT job_runs_finished_when_done CHECK ((outcome = 'running') = (finished_at IS NULL))
);

CREATE INDEX idx_job_runs_job_started ON {{ m.q("job_runs") }} (job, started_at DESC);

COMMENT ON TABLE {{ m.q("job_runs") }} IS 'Each run of a scheduled job: when, how many rows, outcome, error.';
