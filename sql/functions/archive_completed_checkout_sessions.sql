-- The reference's weekly cleanup, without losing the audit trail: completed sessions older than the
-- retention move to payment_checkout_sessions_archive, one bounded batch per call (one transaction).
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("archive_completed_checkout_sessions") }}(
  p_batch_size     INTEGER DEFAULT 1000,
  p_retention_days INTEGER DEFAULT {{ settings.retention_days }}
)
RETURNS INTEGER
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_columns TEXT;
  v_missing TEXT;
  v_count   INTEGER;
BEGIN
  {{ m.require_positive("p_batch_size") }}
  {{ m.require_positive("p_retention_days") }}

  -- Copy columns by name, so the archive's column order does not matter; refuse (moving nothing) when
  -- the live table has a column the archive lacks, rather than drop its values.
  SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
         string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE b.attname IS NULL)
    INTO v_columns, v_missing
    FROM pg_attribute a
    LEFT JOIN pg_attribute b
      ON b.attrelid = 'payment_checkout_sessions_archive'::regclass AND b.attname = a.attname
     AND b.attnum > 0 AND NOT b.attisdropped
   WHERE a.attrelid = 'payment_checkout_sessions'::regclass AND a.attnum > 0 AND NOT a.attisdropped
     AND a.attgenerated = '';
  IF v_missing IS NOT NULL THEN
    RAISE EXCEPTION 'payment_checkout_sessions_archive lacks column(s) % of payment_checkout_sessions', v_missing
      USING ERRCODE = '55000',
            HINT = 'Add them to the archive in a new sql/tables file (ALTER TABLE payment_checkout_sessions_archive ADD COLUMN ...).';
  END IF;

  -- Oldest first (the status index is ordered by created_at, and completion follows creation); rows
  -- another transaction holds are skipped, not waited for.
  EXECUTE format($sql$
    WITH due AS (
      SELECT id
        FROM payment_checkout_sessions
       WHERE status = 'completed' AND completed_at < now() - make_interval(days => $1)
       ORDER BY created_at
       LIMIT $2
         FOR UPDATE SKIP LOCKED
    ), moved AS (
      DELETE FROM payment_checkout_sessions s USING due WHERE s.id = due.id RETURNING s.*
    )
    INSERT INTO payment_checkout_sessions_archive (%1$s, archived_at)
    SELECT %1$s, now() FROM moved
  $sql$, v_columns)
  USING p_retention_days, p_batch_size;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END;
$$;

COMMENT ON FUNCTION {{ m.q("archive_completed_checkout_sessions") }}(INTEGER, INTEGER) IS
  'Moves up to p_batch_size completed sessions whose completed_at is more than p_retention_days old into '
  'payment_checkout_sessions_archive; returns how many moved. Call until it returns less than p_batch_size.';

CREATE OR REPLACE FUNCTION {{ m.q("count_archivable_checkout_sessions") }}(p_retention_days INTEGER)
RETURNS BIGINT
LANGUAGE plpgsql STABLE
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
BEGIN
  IF p_retention_days IS NULL OR p_retention_days <= 0 THEN
    RAISE EXCEPTION 'p_retention_days must be positive, got %', coalesce(p_retention_days::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  RETURN (SELECT count(*) FROM payment_checkout_sessions
           WHERE status = 'completed' AND completed_at < now() - make_interval(days => p_retention_days));
END;
$$;

COMMENT ON FUNCTION {{ m.q("count_archivable_checkout_sessions") }}(INTEGER) IS
  'How many completed sessions are older than p_retention_days (what archive_completed_checkout_sessions would move).';
