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
{{ m.pinned_search_path() }}
AS $$
  SELECT date_bin(INTERVAL '1 hour', p_created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00');
$$;

COMMENT ON FUNCTION {{ m.q("checkout_rollup_bucket") }}(TIMESTAMPTZ) IS
  'The UTC hour a session''s created_at falls in: the bucket of checkout_session_rollup.';

{#- One grouped upsert of signed rows (sign, created_at, subscription_plan, status, attempts, completed_at). -#}
{% macro upsert_from(source) -%}
    INSERT INTO {{ m.q("checkout_session_rollup") }} AS r
           (bucket, subscription_plan, status, sessions, retried, attempts, complete_seconds)
    SELECT {{ m.q("checkout_rollup_bucket") }}(d.created_at), d.subscription_plan, d.status,
           sum(d.sign),
           coalesce(sum(d.sign) FILTER (WHERE d.attempts > 1), 0),
           sum(d.sign * d.attempts),
           coalesce(sum(d.sign * extract(epoch FROM d.completed_at - d.created_at))
                      FILTER (WHERE d.status = 'completed'), 0)
      FROM ({{ source }}) AS d
     GROUP BY 1, 2, 3
    HAVING sum(d.sign) <> 0
        OR coalesce(sum(d.sign) FILTER (WHERE d.attempts > 1), 0) <> 0
        OR sum(d.sign * d.attempts) <> 0
        OR coalesce(sum(d.sign * extract(epoch FROM d.completed_at - d.created_at))
                      FILTER (WHERE d.status = 'completed'), 0) <> 0
     -- A fixed order of rollup rows, so concurrent statements lock them in the same order.
     ORDER BY 1, 2, 3
    ON CONFLICT (bucket, subscription_plan, status) DO UPDATE
       SET sessions = r.sessions + EXCLUDED.sessions,
           retried = r.retried + EXCLUDED.retried,
           attempts = r.attempts + EXCLUDED.attempts,
           complete_seconds = r.complete_seconds + EXCLUDED.complete_seconds;
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
  DELETE FROM {{ m.q("checkout_session_rollup") }};
  INSERT INTO {{ m.q("checkout_session_rollup") }}
         (bucket, subscription_plan, status, sessions, retried, attempts, complete_seconds)
  SELECT {{ m.q("checkout_rollup_bucket") }}(created_at), subscription_plan, status,
         count(*), count(*) FILTER (WHERE attempts > 1), sum(attempts),
         coalesce(sum(extract(epoch FROM completed_at - created_at)) FILTER (WHERE status = 'completed'), 0)
    FROM {{ m.q("payment_checkout_sessions") }}
   GROUP BY 1, 2, 3;
  GET DIAGNOSTICS v_rows = ROW_COUNT;
  RETURN v_rows;
END;
$$;

COMMENT ON FUNCTION {{ m.q("rebuild_checkout_session_rollup") }}() IS
  'Recomputes checkout_session_rollup from payment_checkout_sessions (blocks writers meanwhile); returns its row count.';

CREATE OR REPLACE FUNCTION {{ m.q("checkout_session_stats_since") }}(p_since TIMESTAMPTZ)
RETURNS TABLE (bucket TIMESTAMPTZ, subscription_plan VARCHAR, status VARCHAR, sessions BIGINT,
               retried BIGINT, attempts BIGINT, complete_seconds NUMERIC)
LANGUAGE sql STABLE PARALLEL SAFE
{{ m.pinned_search_path() }}
AS $$
  -- Exactly the sessions with created_at > p_since (all of them when p_since is NULL), by hour:
  -- whole hours from the rollup, the partial first hour from the table.
  SELECT r.bucket, r.subscription_plan, r.status, r.sessions, r.retried, r.attempts, r.complete_seconds
    FROM checkout_session_rollup r
   WHERE r.sessions <> 0
     AND (p_since IS NULL OR r.bucket >= checkout_rollup_bucket(p_since) + INTERVAL '1 hour')
  UNION ALL
  SELECT checkout_rollup_bucket(s.created_at), s.subscription_plan, s.status,
         count(*), count(*) FILTER (WHERE s.attempts > 1), sum(s.attempts),
         coalesce(sum(extract(epoch FROM s.completed_at - s.created_at)) FILTER (WHERE s.status = 'completed'), 0)
    FROM payment_checkout_sessions s
   WHERE p_since IS NOT NULL
     AND s.created_at > p_since
     AND s.created_at < checkout_rollup_bucket(p_since) + INTERVAL '1 hour'
   GROUP BY 1, 2, 3;
$$;

COMMENT ON FUNCTION {{ m.q("checkout_session_stats_since") }}(TIMESTAMPTZ) IS
  'Session counts by UTC hour, plan and status for created_at > p_since (NULL: all): the rollup plus the partial first hour.';

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
