-- The per-user rate limit of create-checkout: called right before the service asks Stripe for a new
-- Checkout Session. Counting in the database makes the limit hold across service processes; the per-user
-- advisory lock makes concurrent requests of one user take turns, so no two of them see the same count.
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("take_stripe_session_quota") }}(
  p_user_id        UUID,
  p_limit          INTEGER,
  p_window_seconds INTEGER
)
RETURNS INTEGER
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_window INTERVAL;
  v_taken  INTEGER;
  v_frees  TIMESTAMP WITH TIME ZONE;
BEGIN
  IF p_user_id IS NULL THEN
    RAISE EXCEPTION 'p_user_id is required' USING ERRCODE = '22023';
  END IF;
  IF p_limit IS NULL OR p_limit < 1 THEN
    RAISE EXCEPTION 'p_limit must be at least 1, got %', coalesce(p_limit::text, 'NULL') USING ERRCODE = '22023';
  END IF;
  IF p_window_seconds IS NULL OR p_window_seconds < 1 THEN
    RAISE EXCEPTION 'p_window_seconds must be at least 1, got %', coalesce(p_window_seconds::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  v_window := make_interval(secs => p_window_seconds);
  -- runner/locks.py STRIPE_QUOTA_LOCK_CLASS ("CSEQ"), then the user: held until the calling statement ends.
  PERFORM pg_catalog.pg_advisory_xact_lock(1129530705, pg_catalog.hashtext(p_user_id::text));
  -- clock_timestamp(), not now(): the lock may have been waited for.
  DELETE FROM checkout_stripe_session_quota
   WHERE user_id = p_user_id AND taken_at <= clock_timestamp() - v_window;
  SELECT count(*) INTO v_taken FROM checkout_stripe_session_quota WHERE user_id = p_user_id;
  IF v_taken >= p_limit THEN
    -- The row whose expiry brings the count below the limit (the limit may have been lowered meanwhile).
    SELECT taken_at INTO v_frees FROM checkout_stripe_session_quota
     WHERE user_id = p_user_id ORDER BY taken_at OFFSET v_taken - p_limit LIMIT 1;
    RETURN greatest(1, ceil(extract(epoch FROM v_frees + v_window - clock_timestamp())))::INTEGER;
  END IF;
  INSERT INTO checkout_stripe_session_quota (user_id, taken_at) VALUES (p_user_id, clock_timestamp());
  RETURN 0;
END;
$$;

COMMENT ON FUNCTION {{ m.q("take_stripe_session_quota") }}(UUID, INTEGER, INTEGER) IS
  'Takes one of the user''s p_limit Stripe Checkout Sessions per p_window_seconds and returns 0, or returns '
  'the seconds until one frees (nothing taken). Concurrent calls for one user take turns. 22023 for bad arguments.';
