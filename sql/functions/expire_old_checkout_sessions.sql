-- depends: checkout_session_rules
-- The reference's hourly cron job.
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("expire_old_checkout_sessions") }}(p_batch_size INTEGER DEFAULT NULL)
RETURNS INTEGER
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_count INTEGER;
BEGIN
  {{ m.require_positive("p_batch_size", null_ok=true) }}

  -- Oldest deadlines first; rows another transaction holds are skipped, not waited for, so the job never
  -- blocks a checkout that is completing right now.
  WITH due AS (
    SELECT id
      FROM payment_checkout_sessions
     WHERE status = 'pending' AND expires_at <= now()
     ORDER BY expires_at
     LIMIT p_batch_size
       FOR UPDATE SKIP LOCKED
  )
  UPDATE payment_checkout_sessions s
     SET status = 'expired'
    FROM due
   WHERE s.id = due.id;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END;
$$;

COMMENT ON FUNCTION {{ m.q("expire_old_checkout_sessions") }}(INTEGER) IS
  'Expires pending sessions past expires_at and returns how many. With p_batch_size, expires at most that '
  'many (oldest first) so a caller can work through a backlog in short transactions.';

-- What `runner job <name> --dry-run` counts: the rows a run would touch now.
CREATE OR REPLACE FUNCTION {{ m.q("count_overdue_checkout_sessions") }}()
RETURNS BIGINT
LANGUAGE sql STABLE
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
  SELECT count(*) FROM payment_checkout_sessions WHERE status = 'pending' AND expires_at <= now();
$$;

COMMENT ON FUNCTION {{ m.q("count_overdue_checkout_sessions") }}() IS
  'How many pending sessions are past expires_at (what expire_old_checkout_sessions would expire now).';
