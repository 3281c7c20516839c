-- scripts/create-payment-checkout-sessions.sql as the reference document describes it: the table exactly
-- as its summary prints it, its four functions and its six indexes. Run by tests/reference_db.py after
-- reference-support.sql (the users table it updates), never by the runner.

CREATE TABLE payment_checkout_sessions (
  id UUID PRIMARY KEY,
  user_id UUID NOT NULL,
  email VARCHAR(255) NOT NULL,
  subscription_plan VARCHAR(50) NOT NULL,
  plan_price DECIMAL(10, 2) NOT NULL,
  payment_provider VARCHAR(50) NOT NULL,
  stripe_session_id VARCHAR(255),
  status VARCHAR(50) DEFAULT 'pending',
  created_at TIMESTAMP WITH TIME ZONE,
  expires_at TIMESTAMP WITH TIME ZONE,
  completed_at TIMESTAMP WITH TIME ZONE,
  attempts INTEGER DEFAULT 0,
  metadata JSONB
);

CREATE INDEX idx_payment_checkout_sessions_user_id ON payment_checkout_sessions (user_id);
CREATE INDEX idx_payment_checkout_sessions_email ON payment_checkout_sessions (email);
CREATE INDEX idx_payment_checkout_sessions_status ON payment_checkout_sessions (status);
CREATE INDEX idx_payment_checkout_sessions_stripe_session ON payment_checkout_sessions (stripe_session_id);
CREATE INDEX idx_payment_checkout_sessions_pending ON payment_checkout_sessions (created_at)
  WHERE status = 'pending';
CREATE INDEX idx_payment_checkout_sessions_expired ON payment_checkout_sessions (expires_at)
  WHERE status = 'pending';

CREATE OR REPLACE FUNCTION get_or_create_checkout_session(
  p_user_id UUID,
  p_email VARCHAR,
  p_plan VARCHAR,
  p_price DECIMAL,
  p_provider VARCHAR DEFAULT 'stripe'
) RETURNS UUID AS $$
DECLARE
  v_session_id UUID;
BEGIN
  SELECT id INTO v_session_id
    FROM payment_checkout_sessions
   WHERE user_id = p_user_id AND subscription_plan = p_plan AND status = 'pending'
   ORDER BY created_at DESC
   LIMIT 1;
  IF v_session_id IS NOT NULL THEN
    UPDATE payment_checkout_sessions SET attempts = attempts + 1 WHERE id = v_session_id;
    RETURN v_session_id;
  END IF;
  INSERT INTO payment_checkout_sessions
    (id, user_id, email, subscription_plan, plan_price, payment_provider, status, created_at, expires_at, attempts)
  VALUES
    (gen_random_uuid(), p_user_id, p_email, p_plan, p_price, p_provider, 'pending', NOW(),
     NOW() + INTERVAL '24 hours', 1)
  RETURNING id INTO v_session_id;
  RETURN v_session_id;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION complete_checkout_session(
  p_session_id UUID,
  p_stripe_session_id VARCHAR,
  p_stripe_customer_id VARCHAR
) RETURNS VOID AS $$
DECLARE
  v_user_id UUID;
  v_plan VARCHAR;
BEGIN
  UPDATE payment_checkout_sessions
     SET status = 'completed', completed_at = NOW(), stripe_session_id = p_stripe_session_id
   WHERE id = p_session_id
   RETURNING user_id, subscription_plan INTO v_user_id, v_plan;
  UPDATE users
     SET subscription_status = 'active', subscription_plan = v_plan,
         stripe_customer_id = p_stripe_customer_id, updated_at = NOW()
   WHERE id = v_user_id;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION expire_old_checkout_sessions() RETURNS INTEGER AS $$
DECLARE
  v_count INTEGER;
BEGIN
  UPDATE payment_checkout_sessions SET status = 'expired'
   WHERE status = 'pending' AND expires_at < NOW();
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION get_latest_checkout_session(p_user_id UUID)
RETURNS TABLE (
  id UUID,
  subscription_plan VARCHAR,
  plan_price DECIMAL,
  status VARCHAR,
  stripe_session_id VARCHAR,
  created_at TIMESTAMP WITH TIME ZONE,
  expires_at TIMESTAMP WITH TIME ZONE
) AS $$
BEGIN
  RETURN QUERY
  SELECT s.id, s.subscription_plan, s.plan_price, s.status, s.stripe_session_id, s.created_at, s.expires_at
    FROM payment_checkout_sessions s
   WHERE s.user_id = p_user_id
   ORDER BY s.created_at DESC
   LIMIT 1;
END;
$$ LANGUAGE plpgsql;
