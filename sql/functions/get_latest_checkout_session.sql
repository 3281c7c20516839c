-- The user's most recent checkout session (any status).
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("get_latest_checkout_session") }}(p_user_id UUID)
RETURNS SETOF {{ m.q("payment_checkout_sessions") }}
LANGUAGE sql STABLE
ROWS 1
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
  SELECT *
    FROM payment_checkout_sessions
   WHERE user_id = p_user_id
   ORDER BY created_at DESC, id DESC
   LIMIT 1;
$$;

COMMENT ON FUNCTION {{ m.q("get_latest_checkout_session") }}(UUID) IS
  'The user''s most recent checkout session, or no row.';
