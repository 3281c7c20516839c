-- depends: checkout_session_rules, checkout_metadata
-- The reference's entry point for starting (or resuming) a checkout. The reference's five named parameters
-- call it unchanged; p_metadata (the app's context, see checkout_metadata.sql) is optional. Exactly one
-- function of this name exists: the reference's five-argument one is dropped here (an adopted database has
-- it), since two overloads would make a call with five arguments ambiguous. privileges.sql grants it again.
{% import "macros/common.sql" as m %}
DROP FUNCTION IF EXISTS {{ m.q("get_or_create_checkout_session") }}(UUID, TEXT, TEXT, NUMERIC, TEXT);

CREATE OR REPLACE FUNCTION {{ m.q("get_or_create_checkout_session") }}(
  p_user_id  UUID,
  p_email    TEXT,
  p_plan     TEXT,
  p_price    NUMERIC DEFAULT NULL,
  p_provider TEXT DEFAULT 'stripe',
  p_metadata JSONB DEFAULT NULL
)
RETURNS UUID
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_plan subscription_plans%ROWTYPE;
  v_id   UUID;
  v_open BOOLEAN;
  v_problem TEXT;
BEGIN
  -- Validate everything before writing anything.
  IF p_user_id IS NULL THEN
    RAISE EXCEPTION 'p_user_id is required' USING ERRCODE = '22023';
  END IF;
  IF p_email IS NULL OR length(p_email) > 255
     OR p_email !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:].]+$' THEN
    RAISE EXCEPTION 'p_email is not an email address: %', coalesce(quote_literal(left(p_email, 80)), 'NULL')
      USING ERRCODE = '22023';
  END IF;
  IF p_provider IS NULL OR p_provider <> ALL (ARRAY[{% for p in settings.providers %}{{ p | sql_literal }}{{ ", " if not loop.last }}{% endfor %}]::text[]) THEN
    RAISE EXCEPTION 'unknown payment provider: %', coalesce(quote_literal(left(p_provider, 80)), 'NULL')
      USING ERRCODE = '22023',
            HINT = 'Accepted providers: {{ settings.providers | join(", ") }}.';
  END IF;
  v_problem := checkout_metadata_problem(p_metadata);
  IF v_problem IS NOT NULL THEN
    RAISE EXCEPTION '%', v_problem USING ERRCODE = '22023',
      HINT = 'A JSON object: at most 20 keys, 4096 bytes, 3 levels; values up to 500 characters.';
  END IF;
  {{ m.require_positive("p_price", null_ok=true) }}

  SELECT * INTO v_plan FROM subscription_plans WHERE code = p_plan;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'unknown plan: %', coalesce(quote_literal(left(p_plan, 80)), 'NULL')
      USING ERRCODE = '22023', HINT = 'Plans live in subscription_plans (sql/project.toml).';
  END IF;
  IF NOT v_plan.active THEN
    RAISE EXCEPTION 'plan % is not active', p_plan USING ERRCODE = '22023';
  END IF;
  IF p_price IS NOT NULL AND p_price <> v_plan.price THEN
    RAISE EXCEPTION 'price % does not match the catalogue price % of plan %', p_price, v_plan.price, p_plan
      USING ERRCODE = '22023', HINT = 'Prices come from subscription_plans, never from the client.';
  END IF;

  -- Lock the user row: serialises concurrent calls for one user (and proves the user exists).
  PERFORM 1 FROM users WHERE id = p_user_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'unknown user: %', p_user_id USING ERRCODE = 'P0002';
  END IF;

  -- An open pending session for this plan is resumed (the reference's recovery flow); one past its
  -- deadline is expired now, so the new one may take its place. A plain SELECT finds it first: an
  -- UPDATE that matches nothing would still fire the table's statement triggers.
  SELECT id, expires_at > now() INTO v_id, v_open
    FROM payment_checkout_sessions
   WHERE user_id = p_user_id AND subscription_plan = p_plan AND status = 'pending'
     FOR UPDATE;
  IF FOUND THEN
    IF v_open THEN
      -- Resumed: the newer context wins key by key, the earlier keys stay.
      UPDATE payment_checkout_sessions
         SET attempts = attempts + 1,
             metadata = CASE WHEN p_metadata IS NULL OR p_metadata = '{}'::jsonb THEN metadata
                             ELSE metadata || p_metadata END
       WHERE id = v_id;
      RETURN v_id;
    END IF;
    UPDATE payment_checkout_sessions SET status = 'expired' WHERE id = v_id;
  END IF;

  INSERT INTO payment_checkout_sessions
    (user_id, email, subscription_plan, plan_price, payment_provider, currency, status, attempts, metadata)
  VALUES
    (p_user_id, p_email, p_plan, v_plan.price, p_provider, v_plan.currency, 'pending', 1,
     coalesce(p_metadata, '{}'::jsonb))
  RETURNING id INTO v_id;
  RETURN v_id;
END;
$$;

COMMENT ON FUNCTION {{ m.q("get_or_create_checkout_session") }}(UUID, TEXT, TEXT, NUMERIC, TEXT, JSONB) IS
  'Returns the user''s open pending session for the plan (attempts + 1, p_metadata merged into its metadata) '
  'or creates one at the catalogue price with p_metadata. Safe under concurrent calls: one pending row per '
  '(user, plan). Raises 22023 for a bad email, provider, plan, price or metadata (checkout_metadata_problem), '
  'P0002 for an unknown user; nothing is written then.';
