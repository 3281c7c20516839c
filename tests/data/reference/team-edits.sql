-- What a real team did to the reference's schema over the months: an extra column, a view on the table,
-- a function of their own calling complete_checkout_session, an audit trigger, and an index of their own.
-- Adoption must keep every one of these working.

ALTER TABLE payment_checkout_sessions ADD COLUMN coupon_code VARCHAR(50);
-- A default the project does not have (its insert trigger fills expires_at): kept while adoption runs.
ALTER TABLE payment_checkout_sessions ALTER COLUMN expires_at SET DEFAULT NOW() + INTERVAL '24 hours';
ALTER TABLE users ADD COLUMN marketing_opt_in BOOLEAN DEFAULT FALSE;

CREATE VIEW team_open_checkouts AS
  SELECT id, user_id, email, subscription_plan, plan_price, coupon_code, created_at
    FROM payment_checkout_sessions
   WHERE status = 'pending';

CREATE TABLE team_checkout_audit (
  id BIGSERIAL PRIMARY KEY,
  session_id UUID NOT NULL,
  old_status VARCHAR(50),
  new_status VARCHAR(50),
  changed_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE OR REPLACE FUNCTION team_audit_status_change() RETURNS TRIGGER AS $$
BEGIN
  IF NEW.status IS DISTINCT FROM OLD.status THEN
    INSERT INTO team_checkout_audit (session_id, old_status, new_status) VALUES (NEW.id, OLD.status, NEW.status);
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER team_checkout_status_audit
  AFTER UPDATE ON payment_checkout_sessions
  FOR EACH ROW EXECUTE FUNCTION team_audit_status_change();

-- Support's "mark paid by hand": completes the session and notes the coupon.
CREATE OR REPLACE FUNCTION team_mark_paid(p_session_id UUID, p_coupon VARCHAR) RETURNS BOOLEAN AS $$
BEGIN
  PERFORM complete_checkout_session(p_session_id => p_session_id,
                                    p_stripe_session_id => 'cs_manual_' || replace(p_session_id::text, '-', ''),
                                    p_stripe_customer_id => NULL);
  UPDATE payment_checkout_sessions SET coupon_code = p_coupon WHERE id = p_session_id;
  RETURN FOUND;
END;
$$ LANGUAGE plpgsql;

CREATE INDEX team_checkout_coupon ON payment_checkout_sessions (coupon_code) WHERE coupon_code IS NOT NULL;
