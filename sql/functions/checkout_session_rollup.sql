-- Keeps checkout_session_rollup (sql/tables/V030) equal to payment_checkout_sessions, and reads windows
-- of it. Statement-level triggers with transition tables: a bulk insert or the expire job's batch
-- update costs one grouped upsert per statement, not one per row, and an update that changes nothing
-- the rollup counts (a Stripe id, a checkout URL) touches no rollup row at all.
--
-- Applying this file (first time, or after any edit) rebuilds the rollup from the table under a SHARE
-- lock in the same transaction that (re)creates the triggers, so no write can slip between the two.
{% import "macros/common.sql" as m %}

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

{#- The band of a completed row, through the (inlined) function below. -#}
{% macro band(alias) -%}
{{ m.q("checkout_completion_band") }}({{ alias }}created_at, {{ alias }}completed_at)
{%- endmacro %}
{% set bands = ["completed_1m", "completed_5m", "completed_15m", "completed_1h", "completed_6h", "completed_24h", "completed_more"] %}

{#- One grouped upsert of signed rows (sign, created_at, subscription_plan, status, attempts, completed_at). -#}
{% macro upsert_from(source) -%}
    INSERT INTO {{ m.q("checkout_session_rollup") }} AS r
           (bucket, subscription_plan, status, sessions, retried, attempts, complete_seconds,
            {{ bands | join(", ") }})
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
{%- endfor %}
     -- A fixed order of rollup rows, so concurrent statements lock them in the same order.
     ORDER BY 1, 2, 3
    ON CONFLICT (bucket, subscription_plan, status) DO UPDATE
       SET sessions = r.sessions + EXCLUDED.sessions,
           retried = r.retried + EXCLUDED.retried,
           attempts = r.attempts + EXCLUDED.attempts,
           complete_seconds = r.complete_seconds + EXCLUDED.complete_seconds,
{%- for column in bands %}
           {{ column }} = r.{{ column }} + EXCLUDED.{{ column }}{{ "," if not loop.last else ";" }}
{%- endfor %}
{%- endmacro %}
{% set new_rows = "SELECT 1 AS sign, created_at, subscription_plan, status, attempts, completed_at FROM new_rows" %}
{% set old_rows = "SELECT -1 AS sign, created_at, subscription_plan, status, attempts, completed_at FROM old_rows" %}

CREATE OR REPLACE FUNCTION {{ m.q("checkout_session_rollup_after_write") }}()
RETURNS TRIGGER
LANGUAGE plpgsql
-- The application role writes sessions; it need not be granted the rollup.
SECURITY DEFINER
{{ m.pinned_search_path() }}
AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
{{ upsert_from(new_rows) }}
  ELSIF TG_OP = 'DELETE' THEN
{{ upsert_from(old_rows) }}
  ELSIF TG_OP = 'UPDATE' THEN
{{ upsert_from(new_rows ~ " UNION ALL " ~ old_rows) }}
  ELSIF TG_OP = 'TRUNCATE' THEN
    TRUNCATE {{ m.q("checkout_session_rollup") }};
  END IF;
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION {{ m.q("checkout_session_rollup_after_write") }}() IS
  'Statement trigger: adds the inserted, removes the deleted and moves the updated sessions in checkout_session_rollup.';

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
  -- TRUNCATE, not DELETE: no dead rows left for the reports to skip over.
  TRUNCATE {{ m.q("checkout_session_rollup") }};
  INSERT INTO {{ m.q("checkout_session_rollup") }}
         (bucket, subscription_plan, status, sessions, retried, attempts, complete_seconds,
          {{ bands | join(", ") }})
  SELECT {{ m.q("checkout_rollup_bucket") }}(created_at), subscription_plan, status,
         count(*), count(*) FILTER (WHERE attempts > 1), sum(attempts),
         coalesce(sum(extract(epoch FROM completed_at - created_at)) FILTER (WHERE status = 'completed'), 0),
{%- for column in bands %}
         count(*) FILTER (WHERE status = 'completed' AND {{ band("") }} = {{ loop.index }}){{ "," if not loop.last }}
{%- endfor %}
    FROM {{ m.q("payment_checkout_sessions") }}
   GROUP BY 1, 2, 3;
  GET DIAGNOSTICS v_rows = ROW_COUNT;
  RETURN v_rows;
END;
$$;

COMMENT ON FUNCTION {{ m.q("rebuild_checkout_session_rollup") }}() IS
  'Recomputes checkout_session_rollup from payment_checkout_sessions (blocks writers meanwhile); returns its row count.';

-- Its columns grew with the completion bands (V031): a changed result type needs a DROP first.
DROP FUNCTION IF EXISTS {{ m.q("checkout_session_stats_since") }}(TIMESTAMPTZ);
CREATE FUNCTION {{ m.q("checkout_session_stats_since") }}(p_since TIMESTAMPTZ)
RETURNS TABLE (bucket TIMESTAMPTZ, subscription_plan VARCHAR, status VARCHAR, sessions BIGINT,
               retried BIGINT, attempts BIGINT, complete_seconds NUMERIC,
               {% for column in bands %}{{ column }} BIGINT{{ ", " if not loop.last }}{% endfor %})
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  -- Exactly the sessions with created_at > p_since (all of them when p_since is NULL), by hour:
  -- whole hours from the rollup, the partial first hour from the table.
  SELECT r.bucket, r.subscription_plan, r.status, r.sessions, r.retried, r.attempts, r.complete_seconds,
         {% for column in bands %}r.{{ column }}{{ ", " if not loop.last }}{% endfor %}
    FROM {{ m.q("checkout_session_rollup") }} r
   WHERE r.sessions <> 0
     AND r.bucket >= {{ m.q("checkout_rollup_bucket") }}(p_since) + INTERVAL '1 hour'
  UNION ALL
  -- All of it when p_since is NULL: a branch of its own, so the windowed branch above keeps its index range.
  SELECT r.bucket, r.subscription_plan, r.status, r.sessions, r.retried, r.attempts, r.complete_seconds,
         {% for column in bands %}r.{{ column }}{{ ", " if not loop.last }}{% endfor %}
    FROM {{ m.q("checkout_session_rollup") }} r
   WHERE r.sessions <> 0
     AND p_since IS NULL
  UNION ALL
  SELECT {{ m.q("checkout_rollup_bucket") }}(s.created_at), s.subscription_plan, s.status,
         count(*), count(*) FILTER (WHERE s.attempts > 1), sum(s.attempts),
         coalesce(sum(extract(epoch FROM s.completed_at - s.created_at)) FILTER (WHERE s.status = 'completed'), 0),
{%- for column in bands %}
         count(*) FILTER (WHERE s.status = 'completed' AND {{ band("s.") }} = {{ loop.index }}){{ "," if not loop.last }}
{%- endfor %}
    FROM {{ m.q("payment_checkout_sessions") }} s
   WHERE p_since IS NOT NULL
     AND s.created_at > p_since
     AND s.created_at < {{ m.q("checkout_rollup_bucket") }}(p_since) + INTERVAL '1 hour'
   GROUP BY 1, 2, 3;
$$;

COMMENT ON FUNCTION {{ m.q("checkout_session_stats_since") }}(TIMESTAMPTZ) IS
  'Session counts (and completion-time bands) by UTC hour, plan and status for created_at > p_since (NULL: all): the rollup plus the partial first hour.';

DROP TRIGGER IF EXISTS payment_checkout_sessions_rollup_insert ON {{ m.q("payment_checkout_sessions") }};
DROP TRIGGER IF EXISTS payment_checkout_sessions_rollup_update ON {{ m.q("payment_checkout_sessions") }};
DROP TRIGGER IF EXISTS payment_checkout_sessions_rollup_delete ON {{ m.q("payment_checkout_sessions") }};
DROP TRIGGER IF EXISTS payment_checkout_sessions_rollup_truncate ON {{ m.q("payment_checkout_sessions") }};

CREATE TRIGGER payment_checkout_sessions_rollup_insert
  AFTER INSERT ON {{ m.q("payment_checkout_sessions") }}
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION {{ m.q("checkout_session_rollup_after_write") }}();
CREATE TRIGGER payment_checkout_sessions_rollup_update
  AFTER UPDATE ON {{ m.q("payment_checkout_sessions") }}
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION {{ m.q("checkout_session_rollup_after_write") }}();
CREATE TRIGGER payment_checkout_sessions_rollup_delete
  AFTER DELETE ON {{ m.q("payment_checkout_sessions") }}
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION {{ m.q("checkout_session_rollup_after_write") }}();
CREATE TRIGGER payment_checkout_sessions_rollup_truncate
  AFTER TRUNCATE ON {{ m.q("payment_checkout_sessions") }}
  FOR EACH STATEMENT EXECUTE FUNCTION {{ m.q("checkout_session_rollup_after_write") }}();

SELECT {{ m.q("rebuild_checkout_session_rollup") }}();
