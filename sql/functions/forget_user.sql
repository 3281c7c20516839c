-- depends: stripe_session_history
-- A deletion request, served by the database whoever deletes the user (`DELETE FROM users WHERE id = ...`
-- in psql, the app, a cascade from the platform's own users): the reference's "sessions tied to user_id with
-- CASCADE delete" made true for every table the project owns, in the deleting transaction.
--   payment_checkout_sessions             deleted by its foreign key (ON DELETE CASCADE)
--   email_outbox                          the user's mail (ON DELETE CASCADE) and mail to their address
--                                         queued without a user id: deleted
--   payment_checkout_sessions_archive     the user's archived payments: deleted
--   payment_checkout_stripe_sessions      the user's Stripe session ids: deleted
--   webhook_events                        kept (the event id keeps a redelivery from being applied again),
--                                         payload cut to the event's skeleton, id and email redacted
--   error_logs                            kept (counts, times), id and email redacted from message and context
-- docs/audit-trail.md describes it for support.
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("redact_text") }}(p_text TEXT, p_needles TEXT[])
RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_text   TEXT := p_text;
  v_needle TEXT;
  v_pos    INTEGER;
BEGIN
  IF v_text IS NULL THEN
    RETURN NULL;
  END IF;
  -- Case-insensitive and literal (an email may hold characters a pattern would treat as wildcards).
  FOREACH v_needle IN ARRAY p_needles LOOP
    CONTINUE WHEN v_needle IS NULL OR v_needle = '';
    LOOP
      v_pos := strpos(lower(v_text), lower(v_needle));
      EXIT WHEN v_pos = 0;
      v_text := overlay(v_text PLACING '[deleted]' FROM v_pos FOR length(v_needle));
    END LOOP;
  END LOOP;
  RETURN v_text;
END;
$$;

COMMENT ON FUNCTION {{ m.q("redact_text") }}(TEXT, TEXT[]) IS
  'p_text with every occurrence of each needle (case-insensitive, literal) replaced by [deleted].';

CREATE OR REPLACE FUNCTION {{ m.q("redact_jsonb") }}(p_value JSONB, p_needles TEXT[])
RETURNS JSONB
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
{{ m.pinned_search_path() }}
AS $$
BEGIN
  CASE jsonb_typeof(p_value)
    WHEN 'object' THEN
      RETURN (SELECT coalesce(jsonb_object_agg(redact_text(e.key, p_needles), redact_jsonb(e.value, p_needles)),
                              '{}'::jsonb)
                FROM jsonb_each(p_value) e);
    WHEN 'array' THEN
      RETURN (SELECT coalesce(jsonb_agg(redact_jsonb(a.value, p_needles) ORDER BY a.ordinality), '[]'::jsonb)
                FROM jsonb_array_elements(p_value) WITH ORDINALITY a);
    WHEN 'string' THEN
      RETURN to_jsonb(redact_text(p_value #>> '{}', p_needles));
    ELSE
      RETURN p_value;
  END CASE;
END;
$$;

COMMENT ON FUNCTION {{ m.q("redact_jsonb") }}(JSONB, TEXT[]) IS
  'p_value with redact_text applied to every string and key, at any depth.';

CREATE OR REPLACE FUNCTION {{ m.q("needles_pattern") }}(p_needles TEXT[])
RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
{{ m.pinned_search_path() }}
AS $$
  -- Every character but letters and digits escaped: in a regular expression a backslash before one is
  -- that character itself. One pattern for all needles: one pass over each text (a table scan's cost).
  SELECT '(' || string_agg(regexp_replace(n, '([^[:alnum:]])', '\\\1', 'g'), '|') || ')'
    FROM unnest(p_needles) n
   WHERE n <> '';
$$;

COMMENT ON FUNCTION {{ m.q("needles_pattern") }}(TEXT[]) IS
  'A regular expression matching any of the needles literally (use with ~*); NULL when there is none.';

CREATE OR REPLACE FUNCTION {{ m.q("mentions_any") }}(p_text TEXT, p_needles TEXT[])
RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE PARALLEL SAFE
{{ m.pinned_search_path() }}
AS $$
  SELECT p_text ~* needles_pattern(p_needles);
$$;

COMMENT ON FUNCTION {{ m.q("mentions_any") }}(TEXT, TEXT[]) IS
  'True when p_text holds one of the needles (case-insensitive, literal).';

CREATE OR REPLACE FUNCTION {{ m.q("users_forget") }}()
RETURNS TRIGGER
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_needles  TEXT[] := ARRAY[OLD.id::text, OLD.email::text];
  v_pattern  TEXT := needles_pattern(ARRAY[OLD.id::text, OLD.email::text]);
  v_sessions UUID[];
  v_archived INTEGER;
  v_mail     INTEGER;
  v_stripe   INTEGER;
  v_events   INTEGER;
  v_errors   INTEGER;
BEGIN
  -- Before the cascade: the live sessions' ids still lead to their webhook events.
  SELECT coalesce(array_agg(id), '{}') INTO v_sessions
    FROM (SELECT s.id FROM payment_checkout_sessions s WHERE s.user_id = OLD.id
          UNION ALL
          SELECT a.id FROM payment_checkout_sessions_archive a WHERE a.user_id = OLD.id) ids;

  DELETE FROM payment_checkout_sessions_archive a WHERE a.user_id = OLD.id;
  GET DIAGNOSTICS v_archived = ROW_COUNT;
  DELETE FROM payment_checkout_stripe_sessions h WHERE h.user_id = OLD.id;
  GET DIAGNOSTICS v_stripe = ROW_COUNT;
  -- Another user may share the address: only mail that is this user's or nobody's.
  DELETE FROM email_outbox o
   WHERE o.user_id = OLD.id OR (o.user_id IS NULL AND lower(o.recipient) = lower(OLD.email));
  GET DIAGNOSTICS v_mail = ROW_COUNT;

  -- The events of the user's sessions (indexed), and any other event naming them (a scan of the events no
  -- session claimed: customer.*, invoice.*, rejected ones). The skeleton keeps what dedupe and support need.
  UPDATE webhook_events w
     SET payload = CASE WHEN w.checkout_session_id = ANY (v_sessions)
                           OR (w.checkout_session_id IS NULL AND w.payload::text ~* v_pattern)
                   THEN redact_jsonb(jsonb_strip_nulls(jsonb_build_object(
                     'id', w.payload -> 'id', 'object', w.payload -> 'object', 'type', w.payload -> 'type',
                     'created', w.payload -> 'created', 'livemode', w.payload -> 'livemode',
                     'api_version', w.payload -> 'api_version', 'redacted', 'user deleted',
                     'data', jsonb_build_object('object', jsonb_strip_nulls(jsonb_build_object(
                       'id', w.payload -> 'data' -> 'object' -> 'id',
                       'object', w.payload -> 'data' -> 'object' -> 'object',
                       'status', w.payload -> 'data' -> 'object' -> 'status',
                       'payment_status', w.payload -> 'data' -> 'object' -> 'payment_status',
                       'amount_total', w.payload -> 'data' -> 'object' -> 'amount_total',
                       'currency', w.payload -> 'data' -> 'object' -> 'currency'))))), v_needles)
                   -- Another user's event that names this one (in its error, say): only the names go.
                   ELSE redact_jsonb(w.payload, v_needles) END,
         outcome = redact_text(w.outcome, v_needles),
         error = redact_text(w.error, v_needles)
   WHERE w.checkout_session_id = ANY (v_sessions)
      OR w.payload::text ~* v_pattern OR w.error ~* v_pattern OR w.outcome ~* v_pattern;
  GET DIAGNOSTICS v_events = ROW_COUNT;

  UPDATE error_logs e
     SET message = redact_text(e.message, v_needles),
         context = redact_jsonb(e.context, v_needles)
   WHERE e.message ~* v_pattern OR e.context::text ~* v_pattern;
  GET DIAGNOSTICS v_errors = ROW_COUNT;

  RAISE NOTICE 'user % deleted: % live and % archived checkout session(s), % Stripe session id(s), % email(s); '
               '% webhook event(s) and % error log(s) redacted',
    OLD.id, cardinality(v_sessions) - v_archived, v_archived, v_stripe, v_mail, v_events, v_errors;
  RETURN OLD;
END;
$$;

COMMENT ON FUNCTION {{ m.q("users_forget") }}() IS
  'Trigger: deleting a user deletes their archived sessions, Stripe session ids and mail, and redacts their '
  'id and email from webhook_events and error_logs, in the deleting transaction (docs/audit-trail.md).';

CREATE OR REPLACE TRIGGER users_forget
  BEFORE DELETE ON {{ m.q("users") }}
  FOR EACH ROW EXECUTE FUNCTION {{ m.q("users_forget") }}();
