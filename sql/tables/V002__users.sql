-- Application users and their subscription state (the reference's users table).
{% import "macros/common.sql" as m %}
CREATE TABLE {{ m.q("users") }} (
  id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  email               VARCHAR(255) NOT NULL,
  subscription_status VARCHAR(50) NOT NULL DEFAULT 'inactive',
  subscription_plan   VARCHAR(50) REFERENCES {{ m.q("subscription_plans") }} (code) ON UPDATE CASCADE,
  stripe_customer_id  VARCHAR(255),
  subscribed_at       TIMESTAMP WITH TIME ZONE,
  created_at          TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
  updated_at          TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
  CONSTRAINT users_subscription_status_known
    CHECK (subscription_status IN ('inactive', 'active', 'past_due', 'canceled'))
);

CREATE INDEX idx_users_email ON {{ m.q("users") }} (lower(email));
CREATE INDEX idx_users_stripe_customer ON {{ m.q("users") }} (stripe_customer_id)
  WHERE stripe_customer_id IS NOT NULL;

COMMENT ON TABLE {{ m.q("users") }} IS 'Application users; subscription_status becomes active when a checkout completes.';
