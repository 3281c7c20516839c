-- The tables the reference's app already had before create-payment-checkout-sessions.sql: users with the
-- subscription columns its webhook updates, webhook_events (queried by topic) and error_logs (by category).
-- Built the way a Next.js/Supabase team typically writes them; run by tests/reference_db.py.

CREATE TABLE users (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  email VARCHAR(255),
  subscription_status VARCHAR(50) DEFAULT 'inactive',
  subscription_plan VARCHAR(50),
  stripe_customer_id VARCHAR(255),
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE TABLE webhook_events (
  id BIGSERIAL PRIMARY KEY,
  stripe_event_id VARCHAR(255),
  topic VARCHAR(255),
  payload JSONB,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);

CREATE TABLE error_logs (
  id BIGSERIAL PRIMARY KEY,
  category VARCHAR(50),
  message TEXT,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
);
