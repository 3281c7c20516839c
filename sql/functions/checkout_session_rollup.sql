-- runner: no-transaction
-- The rollup's write side: keeps checkout_session_rollup (sql/tables/V030) equal to payment_checkout_sessions.
-- Statement-level triggers with transition tables: a bulk insert or the expire job's batch update costs one
-- grouped insert per statement, not one per row, and an update that changes nothing the rollup counts (a
-- Stripe id, a checkout URL) adds nothing at all. The read side (the view and the functions reports call)
-- is checkout_session_rollup_reads.sql, so editing a read never rebuilds the rollup.
--
-- The triggers only *append* signed rows to checkout_session_rollup_delta (sql/tables/V032), which has no
-- unique key: concurrent writers never wait for each other there (upserting the rollup itself made every
-- completion of a session created in the same hour queue on the same rollup rows until the previous
-- commit was flushed). fold_checkout_session_rollup() moves deltas into the rollup in one short
-- transaction; checkout_session_rollup_current (rollup + deltas) is what readers read, so the numbers are
-- exact whether or not a fold ran.
--
-- Applying this file (first time, or after any edit) brings the rollup level with the table without
-- stopping writers (reconcile_checkout_session_rollup(), below): the triggers are swapped in one short
-- transaction, then one statement adds what the table has and the rollup lacks. So the file runs
-- statement by statement (no-transaction); each is idempotent, and an apply stopped half-way runs it again.
{% import "macros/common.sql" as m %}
{% import "macros/rollup.sql" as r %}
{% set bands, measures, fold_lock, band = r.bands, r.measures, r.fold_lock, r.band %}

CREATE OR REPLACE FUNCTION {{ m.q("checkout_rollup_bucket") }}(p_created_at TIMESTAMPTZ)
RETURNS TIMESTAMPTZ
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- No SET search_path on the three small SQL functions of this file: PostgreSQL inlines a SQL function
-- into the calling query only without one (a SET makes it an opaque call, materialised row by row).
-- They name nothing outside pg_catalog, or name it schema-qualified, so the search path cannot redirect them.
AS $$
  SELECT pg_catalog.date_bin(INTERVAL '1 hour', p_created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00');
$$;

COMMENT ON FUNCTION {{ m.q("checkout_rollup_bucket") }}(TIMESTAMPTZ) IS
  'The UTC hour a session''s created_at falls in: the bucket of checkout_session_rollup.';

CREATE OR REPLACE FUNCTION {{ m.q("checkout_completion_band") }}(p_created_at TIMESTAMPTZ, p_completed_at TIMESTAMPTZ)
RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
  SELECT CASE WHEN extract(epoch FROM p_completed_at - p_created_at) < 60 THEN 1
              WHEN extract(epoch FROM p_completed_at - p_created_at) < 300 THEN 2
              WHEN extract(epoch FROM p_completed_at - p_created_at) < 900 THEN 3
              WHEN extract(epoch FROM p_completed_at - p_created_at) < 3600 THEN 4
              WHEN extract(epoch FROM p_completed_at - p_created_at) < 21600 THEN 5
              WHEN extract(epoch FROM p_completed_at - p_created_at) < 86400 THEN 6
              ELSE 7 END;
$$;

COMMENT ON FUNCTION {{ m.q("checkout_completion_band") }}(TIMESTAMPTZ, TIMESTAMPTZ) IS
  'Time-to-complete band 1..7: under 1 min, 1-5 min, 5-15 min, 15-60 min, 1-6 h, 6-24 h, a day or more '
  '(the rollup''s completed_1m .. completed_more).';

{#- Append the grouped signed rows (sign, created_at, subscription_plan, status, attempts, completed_at) to
    the delta table: an INSERT of new rows only, so no writer ever waits for another's lock. -#}
{% macro append_from(source) -%}
    INSERT INTO {{ m.q("checkout_session_rollup_delta") }}
           (bucket, subscription_plan, status, {{ measures | join(", ") }})
    SELECT {{ m.q("checkout_rollup_bucket") }}(d.created_at), d.subscription_plan, d.status,
           sum(d.sign),
           coalesce(sum(d.sign) FILTER (WHERE d.attempts > 1), 0),
           sum(d.sign * d.attempts),
           coalesce(sum(d.sign * extract(epoch FROM d.completed_at - d.created_at))
                      FILTER (WHERE d.status = 'completed'), 0),
{%- for column in bands %}
           coalesce(sum(d.sign) FILTER (WHERE d.status = 'completed' AND {{ band("d.") }} = {{ loop.index }}), 0)
           {{- "," if not loop.last }}
{%- endfor %}
      FROM ({{ source }}) AS d
     GROUP BY 1, 2, 3
    HAVING sum(d.sign) <> 0
        OR coalesce(sum(d.sign) FILTER (WHERE d.attempts > 1), 0) <> 0
        OR sum(d.sign * d.attempts) <> 0
        OR coalesce(sum(d.sign * extract(epoch FROM d.completed_at - d.created_at))
                      FILTER (WHERE d.status = 'completed'), 0) <> 0
{%- for column in bands %}
        OR coalesce(sum(d.sign) FILTER (WHERE d.status = 'completed' AND {{ band("d.") }} = {{ loop.index }}), 0) <> 0
{%- endfor %};
{%- endmacro %}
{% set new_rows = "SELECT 1 AS sign, created_at, subscription_plan, status, attempts, completed_at FROM new_rows" %}
{% set old_rows = "SELECT -1 AS sign, created_at, subscription_plan, status, attempts, completed_at FROM old_rows" %}

CREATE OR REPLACE FUNCTION {{ m.q("checkout_session_rollup_after_write") }}()
RETURNS TRIGGER
LANGUAGE plpgsql
-- The application role writes sessions; it need not be granted the rollup.
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
{{ append_from(new_rows) }}
  ELSIF TG_OP = 'DELETE' THEN
{{ append_from(old_rows) }}
  ELSIF TG_OP = 'UPDATE' THEN
{{ append_from(new_rows ~ " UNION ALL " ~ old_rows) }}
  ELSIF TG_OP = 'TRUNCATE' THEN
    TRUNCATE {{ m.q("checkout_session_rollup") }}, {{ m.q("checkout_session_rollup_delta") }};
  END IF;
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION {{ m.q("checkout_session_rollup_after_write") }}() IS
  'Statement trigger: appends the inserted (+), deleted (-) and moved (- old, + new) sessions to checkout_session_rollup_delta.';

{#- The table counted the rollup's way: one row per (hour, plan, status) with every measure, named. -#}
{% macro table_counts() -%}
SELECT {{ m.q("checkout_rollup_bucket") }}(created_at) AS bucket, subscription_plan, status,
         count(*) AS sessions, count(*) FILTER (WHERE attempts > 1) AS retried, sum(attempts) AS attempts,
         coalesce(sum(extract(epoch FROM completed_at - created_at)) FILTER (WHERE status = 'completed'), 0)
           AS complete_seconds,
{%- for column in bands %}
         count(*) FILTER (WHERE status = 'completed' AND {{ band("") }} = {{ loop.index }}) AS {{ column }}{{ "," if not loop.last }}
{%- endfor %}
    FROM {{ m.q("payment_checkout_sessions") }}
   GROUP BY 1, 2, 3
{%- endmacro %}

CREATE OR REPLACE FUNCTION {{ m.q("rebuild_checkout_session_rollup") }}()
RETURNS BIGINT
LANGUAGE plpgsql
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_rows BIGINT;
BEGIN
  -- Writers wait until the rebuild commits; readers carry on.
  LOCK TABLE {{ m.q("payment_checkout_sessions") }} IN SHARE MODE;
  -- One fold at a time, and none while rebuilding (fold_checkout_session_rollup takes the same lock).
  PERFORM pg_catalog.pg_advisory_xact_lock({{ fold_lock }});
  -- TRUNCATE, not DELETE: no dead rows left for the reports to skip over. The deltas are part of what is
  -- recomputed: whatever they held is in the table, which the SHARE lock keeps still.
  TRUNCATE {{ m.q("checkout_session_rollup") }}, {{ m.q("checkout_session_rollup_delta") }};
  INSERT INTO {{ m.q("checkout_session_rollup") }}
         (bucket, subscription_plan, status, {{ measures | join(", ") }})
  {{ table_counts() }};
  GET DIAGNOSTICS v_rows = ROW_COUNT;
  RETURN v_rows;
END;
$$;

COMMENT ON FUNCTION {{ m.q("rebuild_checkout_session_rollup") }}() IS
  'Recomputes checkout_session_rollup from payment_checkout_sessions and empties checkout_session_rollup_delta '
  '(blocks writers meanwhile); returns the rollup''s row count.';

CREATE OR REPLACE FUNCTION {{ m.q("fold_checkout_session_rollup") }}(p_max_rows INTEGER DEFAULT 100000)
RETURNS BIGINT
LANGUAGE plpgsql
-- The jobs' role calls it; it need not be granted the rollup tables.
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_rows BIGINT;
BEGIN
  {{ m.require_positive("p_max_rows") }}
  -- Folds take turns (a second one waits for the first's commit, then folds what is left), so no delta row
  -- is ever read by two of them. Writers never take this lock: they only append.
  PERFORM pg_catalog.pg_advisory_xact_lock({{ fold_lock }});
  -- One statement: the deltas deleted and their sums added to the rollup commit together, so a reader of
  -- checkout_session_rollup_current sees either both or neither. Rows appended by transactions that have
  -- not committed are invisible here and stay for the next fold.
  WITH moved AS (
    DELETE FROM {{ m.q("checkout_session_rollup_delta") }}
     WHERE ctid = ANY (ARRAY(SELECT ctid FROM {{ m.q("checkout_session_rollup_delta") }} LIMIT p_max_rows))
    RETURNING *
  ), folded AS (
    INSERT INTO {{ m.q("checkout_session_rollup") }} AS r
           (bucket, subscription_plan, status, {{ measures | join(", ") }})
    SELECT bucket, subscription_plan, status,
           {% for column in measures %}sum({{ column }}){{ ", " if not loop.last }}{% endfor %}
      FROM moved
     GROUP BY 1, 2, 3
     -- A fixed order of rollup rows: nothing else writes them but a rebuild, yet keep lock order predictable.
     ORDER BY 1, 2, 3
    ON CONFLICT (bucket, subscription_plan, status) DO UPDATE
       SET {% for column in measures %}{{ column }} = r.{{ column }} + EXCLUDED.{{ column }}{{ ",\n           " if not loop.last }}{% endfor %}
    RETURNING 1
  )
  SELECT count(*) INTO v_rows FROM moved;
  RETURN v_rows;
END;
$$;

COMMENT ON FUNCTION {{ m.q("fold_checkout_session_rollup") }}(INTEGER) IS
  'Moves up to p_max_rows rows of checkout_session_rollup_delta into checkout_session_rollup in one transaction '
  '(folds take turns; writers never wait for it); returns how many delta rows it folded.';

CREATE OR REPLACE FUNCTION {{ m.q("count_checkout_session_rollup_deltas") }}()
RETURNS BIGINT
LANGUAGE sql STABLE
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
  SELECT count(*) FROM {{ m.q("checkout_session_rollup_delta") }};
$$;

COMMENT ON FUNCTION {{ m.q("count_checkout_session_rollup_deltas") }}() IS
  'How many rows of checkout_session_rollup_delta are waiting to be folded (runner job rollup --dry-run).';

CREATE OR REPLACE FUNCTION {{ m.q("reconcile_checkout_session_rollup") }}()
RETURNS BIGINT
LANGUAGE plpgsql
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_rows BIGINT;
BEGIN
  -- Folds and rebuilds wait (they take the same lock); writers never do: they only append deltas.
  PERFORM pg_catalog.pg_advisory_xact_lock({{ fold_lock }});
  -- One statement, so one snapshot: what the table holds in it, less what the rollup and its deltas hold
  -- in it, is added to the rollup. Every write the snapshot does not see appends its own deltas (the
  -- triggers were in place before it started), so rollup + deltas equal the table from its commit on,
  -- whatever the rollup held before (empty, stale, counted by an older version of this file).
  INSERT INTO {{ m.q("checkout_session_rollup") }} AS r
         (bucket, subscription_plan, status, {{ measures | join(", ") }})
  SELECT bucket, subscription_plan, status,
         {% for column in measures %}sum({{ column }}){{ ", " if not loop.last }}{% endfor %}
    FROM (
      {{ table_counts() | indent(4) }}
      UNION ALL
      SELECT bucket, subscription_plan, status,
             {% for column in measures %}-{{ column }}{{ ", " if not loop.last }}{% endfor %}
        FROM {{ m.q("checkout_session_rollup") }}
      UNION ALL
      SELECT bucket, subscription_plan, status,
             {% for column in measures %}-{{ column }}{{ ", " if not loop.last }}{% endfor %}
        FROM {{ m.q("checkout_session_rollup_delta") }}
    ) AS d
   GROUP BY 1, 2, 3
  HAVING {% for column in measures %}sum({{ column }}) <> 0{{ "\n      OR " if not loop.last }}{% endfor %}
   ORDER BY 1, 2, 3
  ON CONFLICT (bucket, subscription_plan, status) DO UPDATE
     SET {% for column in measures %}{{ column }} = r.{{ column }} + EXCLUDED.{{ column }}{{ ",\n         " if not loop.last }}{% endfor %};
  GET DIAGNOSTICS v_rows = ROW_COUNT;
  RETURN v_rows;
END;
$$;

COMMENT ON FUNCTION {{ m.q("reconcile_checkout_session_rollup") }}() IS
  'Makes checkout_session_rollup (with its deltas) equal payment_checkout_sessions without blocking writers '
  '(one scan of the table; folds wait meanwhile); returns how many rollup rows it corrected.';

-- The triggers, replaced in one statement (one transaction). Its lock waits for the writers already
-- running, which may have used the functions above as they were; every later write uses these. Not DROP
-- and CREATE: DROP TRIGGER's exclusive lock would deadlock with a writer between its SELECT ... FOR UPDATE
-- and its UPDATE; CREATE OR REPLACE TRIGGER (PostgreSQL 14) takes only this lock.
DO $$
BEGIN
  LOCK TABLE {{ m.q("payment_checkout_sessions") }} IN SHARE ROW EXCLUSIVE MODE;
  CREATE OR REPLACE TRIGGER payment_checkout_sessions_rollup_insert
    AFTER INSERT ON {{ m.q("payment_checkout_sessions") }}
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {{ m.q("checkout_session_rollup_after_write") }}();
  CREATE OR REPLACE TRIGGER payment_checkout_sessions_rollup_update
    AFTER UPDATE ON {{ m.q("payment_checkout_sessions") }}
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {{ m.q("checkout_session_rollup_after_write") }}();
  CREATE OR REPLACE TRIGGER payment_checkout_sessions_rollup_delete
    AFTER DELETE ON {{ m.q("payment_checkout_sessions") }}
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION {{ m.q("checkout_session_rollup_after_write") }}();
  CREATE OR REPLACE TRIGGER payment_checkout_sessions_rollup_truncate
    AFTER TRUNCATE ON {{ m.q("payment_checkout_sessions") }}
    FOR EACH STATEMENT EXECUTE FUNCTION {{ m.q("checkout_session_rollup_after_write") }}();
END;
$$;

SELECT {{ m.q("reconcile_checkout_session_rollup") }}();
