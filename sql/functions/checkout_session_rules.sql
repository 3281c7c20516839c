-- The rules every write to payment_checkout_sessions obeys, whoever writes it (functions, the API,
-- a DBA in psql): default expiry, allowed status transitions, updated_at.
{% import "macros/common.sql" as m %}

CREATE OR REPLACE FUNCTION {{ m.q("checkout_status_transition_allowed") }}(p_from TEXT, p_to TEXT)
RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE PARALLEL SAFE
{{ m.pinned_search_path() }}
AS $$
  SELECT p_from = p_to
      OR (p_from = 'pending' AND p_to IN ('completed', 'expired', 'canceled', 'failed'))
      -- Stripe confirmed the payment after the row left pending locally: the money wins.
      OR (p_from IN ('expired', 'canceled', 'failed') AND p_to = 'completed');
$$;

COMMENT ON FUNCTION {{ m.q("checkout_status_transition_allowed") }}(TEXT, TEXT) IS
  'True when a checkout session may move from p_from to p_to: pending -> completed|expired|canceled|failed; '
  'expired|canceled|failed -> completed (a payment Stripe confirmed). Nothing moves backwards.';

CREATE OR REPLACE FUNCTION {{ m.q("payment_checkout_sessions_before_write") }}()
RETURNS TRIGGER
LANGUAGE plpgsql
{{ m.pinned_search_path() }}
AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    NEW.created_at := COALESCE(NEW.created_at, now());
    NEW.expires_at := COALESCE(NEW.expires_at, NEW.created_at + INTERVAL '{{ settings.expiry_hours }} hours');
    RETURN NEW;
  END IF;

  IF NEW.status IS DISTINCT FROM OLD.status THEN
    IF NOT checkout_status_transition_allowed(OLD.status, NEW.status) THEN
      RAISE EXCEPTION 'checkout session % cannot move from % to %', OLD.id, OLD.status, NEW.status
        USING ERRCODE = '55000',
              HINT = 'Allowed: pending -> completed|expired|canceled|failed, and expired|canceled|failed -> completed.';
    END IF;
    IF NEW.status = 'completed' AND NEW.completed_at IS NULL THEN
      NEW.completed_at := now();
    END IF;
  END IF;
  IF OLD.status = 'completed' AND NEW.completed_at IS DISTINCT FROM OLD.completed_at THEN
    RAISE EXCEPTION 'checkout session % is completed; its completed_at cannot change', OLD.id
      USING ERRCODE = '55000';
  END IF;
  NEW.updated_at := now();
  RETURN NEW;
END;
$$;

COMMENT ON FUNCTION {{ m.q("payment_checkout_sessions_before_write") }}() IS
  'Trigger: default expires_at from created_at, refuse backward status moves, keep updated_at.';

CREATE OR REPLACE TRIGGER payment_checkout_sessions_before_write
  BEFORE INSERT OR UPDATE ON {{ m.q("payment_checkout_sessions") }}
  FOR EACH ROW EXECUTE FUNCTION {{ m.q("payment_checkout_sessions_before_write") }}();

-- A completed session implies an active subscription, whoever completes it (the webhook through
-- complete_checkout_session, a support engineer in psql, a backfill). Statement-level with transition
-- tables: one UPDATE of users per statement, however many rows it touched. The owner's rights: whoever may
-- update a session need not be granted users (Supabase's service_role links stripe_session_id directly, and
-- PostgreSQL checks the UPDATE's privileges even when it matches no row).
CREATE OR REPLACE FUNCTION {{ m.q("activate_subscriptions_on_completion") }}()
RETURNS TRIGGER
LANGUAGE plpgsql
{{ m.security_definer() }}
{{ m.pinned_search_path() }}
AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE users u
       SET subscription_status = 'active',
           subscription_plan = c.subscription_plan,
           stripe_customer_id = COALESCE(c.stripe_customer_id, u.stripe_customer_id),
           subscribed_at = c.completed_at
      FROM (SELECT DISTINCT ON (user_id) user_id, subscription_plan, stripe_customer_id, completed_at
              FROM new_rows WHERE status = 'completed'
             ORDER BY user_id, completed_at DESC) c
     WHERE u.id = c.user_id;
  ELSE
    UPDATE users u
       SET subscription_status = 'active',
           subscription_plan = c.subscription_plan,
           stripe_customer_id = COALESCE(c.stripe_customer_id, u.stripe_customer_id),
           subscribed_at = c.completed_at
      FROM (SELECT DISTINCT ON (n.user_id) n.user_id, n.subscription_plan, n.stripe_customer_id, n.completed_at
              FROM new_rows n JOIN old_rows o ON o.id = n.id
             WHERE n.status = 'completed' AND o.status <> 'completed'
             ORDER BY n.user_id, n.completed_at DESC) c
     WHERE u.id = c.user_id;
  END IF;
  RETURN NULL;
END;
$$;

COMMENT ON FUNCTION {{ m.q("activate_subscriptions_on_completion") }}() IS
  'Trigger: when sessions become completed, the users'' subscriptions become active on that plan.';

CREATE OR REPLACE TRIGGER payment_checkout_sessions_activate_on_insert
  AFTER INSERT ON {{ m.q("payment_checkout_sessions") }}
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION {{ m.q("activate_subscriptions_on_completion") }}();

CREATE OR REPLACE TRIGGER payment_checkout_sessions_activate_on_update
  AFTER UPDATE ON {{ m.q("payment_checkout_sessions") }}
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION {{ m.q("activate_subscriptions_on_completion") }}();

CREATE OR REPLACE FUNCTION {{ m.q("touch_updated_at") }}()
RETURNS TRIGGER
LANGUAGE plpgsql
{{ m.pinned_search_path() }}
AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
$$;

COMMENT ON FUNCTION {{ m.q("touch_updated_at") }}() IS 'Trigger: set updated_at to now() on every update.';

CREATE OR REPLACE TRIGGER users_touch_updated_at
  BEFORE UPDATE ON {{ m.q("users") }}
  FOR EACH ROW EXECUTE FUNCTION {{ m.q("touch_updated_at") }}();

CREATE OR REPLACE TRIGGER subscription_plans_touch_updated_at
  BEFORE UPDATE ON {{ m.q("subscription_plans") }}
  FOR EACH ROW EXECUTE FUNCTION {{ m.q("touch_updated_at") }}();
