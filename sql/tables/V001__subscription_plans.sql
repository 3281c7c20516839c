-- The plan catalogue: the only source of a checkout's price. Rows are kept in step with
-- sql/project.toml by sql/functions/plan_catalogue.sql.
{% import "macros/common.sql" as m %}
CREATE TABLE {{ m.q("subscription_plans") }} (
  code            VARCHAR(50) PRIMARY KEY,
  name            VARCHAR(255) NOT NULL,
  price           DECIMAL(10, 2) NOT NULL,
  currency        CHAR(3) NOT NULL DEFAULT '{{ settings.default_currency }}',
  billing_interval VARCHAR(20) NOT NULL DEFAULT 'month',
  stripe_price_id VARCHAR(255),
  active          BOOLEAN NOT NULL DEFAULT TRUE,
  created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
  updated_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
  CONSTRAINT subscription_plans_code_format CHECK (code ~ '^[a-z0-9][a-z0-9_-]{0,49}$'),
  CONSTRAINT subscription_plans_price_positive CHECK (price > 0),
  CONSTRAINT subscription_plans_currency_format CHECK (currency ~ '^[a-z]{3}$'),
  CONSTRAINT subscription_plans_interval_known CHECK (billing_interval IN ('day', 'week', 'month', 'year'))
);

COMMENT ON TABLE {{ m.q("subscription_plans") }} IS
  'Plan catalogue: checkout prices come from here, never from the client.';
