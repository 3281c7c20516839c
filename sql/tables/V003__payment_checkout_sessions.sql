-- Every checkout attempt: the reference's payment_checkout_sessions, with every column and type it
-- gives, its six named indexes, and the rules it leaves implicit made explicit as constraints.
{% import "macros/common.sql" as m %}
CREATE TABLE {{ m.q("payment_checkout_sessions") }} (
  id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id            UUID NOT NULL REFERENCES {{ m.q("users") }} (id) ON DELETE CASCADE,
  email              VARCHAR(255) NOT NULL,
  subscription_plan  VARCHAR(50) NOT NULL,
  plan_price         DECIMAL(10, 2) NOT NULL,
  payment_provider   VARCHAR(50) NOT NULL,
  stripe_session_id  VARCHAR(255),
  status             VARCHAR(50) NOT NULL DEFAULT 'pending',
  created_at         TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
  -- Filled by the insert trigger as created_at + {{ settings.expiry_hours }} hours when not given, so an
  -- explicit created_at (a backfill, a test) still gets the right expiry.
  expires_at         TIMESTAMP WITH TIME ZONE NOT NULL,
  completed_at       TIMESTAMP WITH TIME ZONE,
  attempts           INTEGER NOT NULL DEFAULT 0,
  metadata           JSONB NOT NULL DEFAULT '{}'::jsonb,
  -- Beyond the reference: what the Stripe flow and support need on the row.
  currency           CHAR(3),
  stripe_customer_id VARCHAR(255),
  checkout_url       TEXT,
  updated_at         TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
  CONSTRAINT payment_checkout_sessions_status_known CHECK (status IN {{ m.status_list() }}),
  CONSTRAINT payment_checkout_sessions_price_positive CHECK (plan_price > 0),
  CONSTRAINT payment_checkout_sessions_attempts_nonnegative CHECK (attempts >= 0),
  CONSTRAINT payment_checkout_sessions_completed_has_time
    CHECK ((status = 'completed') = (completed_at IS NOT NULL)),
  CONSTRAINT payment_checkout_sessions_expiry_after_creation CHECK (expires_at > created_at)
);

-- The reference's six indexes.
CREATE INDEX idx_payment_checkout_sessions_user_id
  ON {{ m.q("payment_checkout_sessions") }} (user_id, created_at DESC);
CREATE INDEX idx_payment_checkout_sessions_email
  ON {{ m.q("payment_checkout_sessions") }} (email);
CREATE INDEX idx_payment_checkout_sessions_status
  ON {{ m.q("payment_checkout_sessions") }} (status, created_at);
-- Unique: one row per Stripe session (many NULLs allowed before the Stripe session exists).
CREATE UNIQUE INDEX idx_payment_checkout_sessions_stripe_session
  ON {{ m.q("payment_checkout_sessions") }} (stripe_session_id);
-- Open checkouts by age: reminders, stuck sessions, abandonment age.
CREATE INDEX idx_payment_checkout_sessions_pending
  ON {{ m.q("payment_checkout_sessions") }} (created_at) WHERE status = 'pending';
-- Open checkouts by deadline: what the expire job walks.
CREATE INDEX idx_payment_checkout_sessions_expired
  ON {{ m.q("payment_checkout_sessions") }} (expires_at) WHERE status = 'pending';

-- At most one pending session per (user, plan), enforced by the database even under concurrent requests.
CREATE UNIQUE INDEX uq_payment_checkout_sessions_one_pending
  ON {{ m.q("payment_checkout_sessions") }} (user_id, subscription_plan) WHERE status = 'pending';

COMMENT ON TABLE {{ m.q("payment_checkout_sessions") }} IS
  'One row per checkout attempt: the audit trail of payments, recovery of abandoned checkouts, analytics.';
COMMENT ON COLUMN {{ m.q("payment_checkout_sessions") }}.attempts IS
  'How many times the user started this checkout (1 on creation, +1 each time it is resumed).';
COMMENT ON COLUMN {{ m.q("payment_checkout_sessions") }}.expires_at IS
  'When a pending session stops being resumable: created_at + {{ settings.expiry_hours }} hours unless given.';
