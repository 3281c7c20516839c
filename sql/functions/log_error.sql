-- Writing the reference's error_logs from the runner (runner/error_log.py): the application role may not
-- INSERT into the table itself.
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("log_error") }}(
  p_category TEXT,
  p_message  TEXT,
  p_context  JSONB DEFAULT '{}'::jsonb
)
RETURNS BIGINT
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_id BIGINT;
BEGIN
  IF p_category IS NULL OR p_category !~ '^[a-z][a-z0-9_]{0,49}$' THEN
    RAISE EXCEPTION 'p_category must be a lower-case name of at most 50 characters, got %',
      coalesce(quote_literal(left(p_category, 60)), 'NULL') USING ERRCODE = '22023';
  END IF;
  IF p_message IS NULL OR btrim(p_message) = '' THEN
    RAISE EXCEPTION 'p_message is required' USING ERRCODE = '22023';
  END IF;
  IF p_context IS NOT NULL AND jsonb_typeof(p_context) <> 'object' THEN
    RAISE EXCEPTION 'p_context must be a JSON object' USING ERRCODE = '22023';
  END IF;
  INSERT INTO error_logs (category, message, context)
  VALUES (p_category, left(p_message, 10000), coalesce(p_context, '{}'::jsonb))
  RETURNING id INTO v_id;
  RETURN v_id;
END;
$$;

COMMENT ON FUNCTION {{ m.q("log_error") }}(TEXT, TEXT, JSONB) IS
  'Adds one error_logs row (category such as stripe, webhook, email; the message cut at 10000 characters; '
  'a JSON object of context) and returns its id. Raises 22023 for a bad category, message or context.';
