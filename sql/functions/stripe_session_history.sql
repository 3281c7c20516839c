-- depends: checkout_session_rules
-- Keeping and reading payment_checkout_stripe_sessions (sql/tables/V070): every Stripe session a checkout
-- row has had. Triggers, so every writer of stripe_session_id is covered (link_stripe_session,
-- complete_checkout_session, the reference's own UPDATE, a DBA in psql, `runner adopt`).
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("payment_checkout_sessions_keep_stripe_session") }}()
RETURNS TRIGGER
LANGUAGE plpgsql
-- The owner's rights: a writer of stripe_session_id need not be granted the history table (Supabase's
-- service_role may update only that column of payment_checkout_sessions; tests/sql/test_supabase.py).
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
BEGIN
  -- The row's earlier Stripe session is replaced, not forgotten.
  UPDATE payment_checkout_stripe_sessions h
     SET replaced_at = greatest(now(), h.linked_at)
   WHERE h.checkout_session_id = NEW.id AND h.replaced_at IS NULL
     AND h.stripe_session_id <> NEW.stripe_session_id;
  INSERT INTO payment_checkout_stripe_sessions (stripe_session_id, checkout_session_id, user_id)
  VALUES (NEW.stripe_session_id, NEW.id, NEW.user_id)
  ON CONFLICT (stripe_session_id) DO UPDATE
    SET replaced_at = NULL  -- linked back to a Stripe session it had before (a DBA's repair)
    WHERE payment_checkout_stripe_sessions.checkout_session_id = EXCLUDED.checkout_session_id;
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION {{ m.q("payment_checkout_sessions_keep_stripe_session") }}() IS
  'Trigger: records a checkout session''s new Stripe session in payment_checkout_stripe_sessions and marks '
  'the one it replaces (replaced_at).';

-- Two triggers: an INSERT trigger's WHEN may not name OLD. UPDATE OF: statements that do not set the
-- column (the webhook completing a row, the expire job) do not even evaluate the condition.
CREATE OR REPLACE TRIGGER payment_checkout_sessions_keep_stripe_session_insert
  AFTER INSERT ON {{ m.q("payment_checkout_sessions") }}
  FOR EACH ROW WHEN (NEW.stripe_session_id IS NOT NULL)
  EXECUTE FUNCTION {{ m.q("payment_checkout_sessions_keep_stripe_session") }}();

CREATE OR REPLACE TRIGGER payment_checkout_sessions_keep_stripe_session_update
  AFTER UPDATE OF stripe_session_id ON {{ m.q("payment_checkout_sessions") }}
  FOR EACH ROW WHEN (NEW.stripe_session_id IS NOT NULL
                     AND NEW.stripe_session_id IS DISTINCT FROM OLD.stripe_session_id)
  EXECUTE FUNCTION {{ m.q("payment_checkout_sessions_keep_stripe_session") }}();

CREATE OR REPLACE FUNCTION {{ m.q("checkout_session_for_stripe_session") }}(p_stripe_session_id TEXT)
RETURNS UUID
LANGUAGE plpgsql STABLE
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_id UUID;
BEGIN
  IF p_stripe_session_id IS NULL OR btrim(p_stripe_session_id) = '' OR length(p_stripe_session_id) > 255 THEN
    RAISE EXCEPTION 'p_stripe_session_id is required (at most 255 characters)' USING ERRCODE = '22023';
  END IF;
  SELECT s.id INTO v_id FROM payment_checkout_sessions s WHERE s.stripe_session_id = p_stripe_session_id;
  IF v_id IS NULL THEN
    SELECT h.checkout_session_id INTO v_id
      FROM payment_checkout_stripe_sessions h
     WHERE h.stripe_session_id = p_stripe_session_id;
  END IF;
  RETURN v_id;
END;
$$;

COMMENT ON FUNCTION {{ m.q("checkout_session_for_stripe_session") }}(TEXT) IS
  'The id of the checkout session that has or had this Stripe session (current or replaced), or NULL. The '
  'row may since have moved to payment_checkout_sessions_archive. Raises 22023 for a missing or over-long id.';

CREATE OR REPLACE FUNCTION {{ m.q("checkout_stripe_session_ids") }}(p_session_id UUID)
RETURNS TEXT[]
LANGUAGE sql STABLE
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
  SELECT coalesce(array_agg(h.stripe_session_id::text ORDER BY h.linked_at, h.stripe_session_id), '{}')
    FROM payment_checkout_stripe_sessions h
   WHERE h.checkout_session_id = p_session_id;
$$;

COMMENT ON FUNCTION {{ m.q("checkout_stripe_session_ids") }}(UUID) IS
  'Every Stripe session of a checkout session, oldest first (the last is the current one); empty if none.';
