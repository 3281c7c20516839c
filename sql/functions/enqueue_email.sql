-- Queue an email in the outbox, at most once per dedupe key.
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("enqueue_email") }}(
  p_kind       TEXT,
  p_recipient  TEXT,
  p_dedupe_key TEXT,
  p_user_id    UUID DEFAULT NULL,
  p_session_id UUID DEFAULT NULL,
  p_context    JSONB DEFAULT '{}'::jsonb
)
RETURNS BIGINT
LANGUAGE plpgsql
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_id BIGINT;
BEGIN
  IF p_kind IS NULL OR p_kind !~ '^[a-z][a-z0-9_]{0,49}$' THEN
    RAISE EXCEPTION 'p_kind must be a lower-case name, got %', coalesce(quote_literal(left(p_kind, 60)), 'NULL')
      USING ERRCODE = '22023';
  END IF;
  IF p_recipient IS NULL OR length(p_recipient) > 255
     OR p_recipient !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:].]+$' THEN
    RAISE EXCEPTION 'p_recipient is not an email address' USING ERRCODE = '22023';
  END IF;
  IF p_dedupe_key IS NULL OR btrim(p_dedupe_key) = '' OR length(p_dedupe_key) > 255 THEN
    RAISE EXCEPTION 'p_dedupe_key is required (at most 255 characters)' USING ERRCODE = '22023';
  END IF;

  INSERT INTO email_outbox (kind, recipient, dedupe_key, user_id, checkout_session_id, context)
  VALUES (p_kind, p_recipient, p_dedupe_key, p_user_id, p_session_id, COALESCE(p_context, '{}'::jsonb))
  ON CONFLICT (dedupe_key) DO NOTHING
  RETURNING id INTO v_id;
  RETURN v_id;  -- NULL when that key was queued before
END;
$$;

COMMENT ON FUNCTION {{ m.q("enqueue_email") }}(TEXT, TEXT, TEXT, UUID, UUID, JSONB) IS
  'Queues an email once per dedupe key; returns the outbox id, or NULL when the key was already queued.';
