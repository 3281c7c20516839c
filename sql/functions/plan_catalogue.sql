-- Keeps subscription_plans in step with the [[plans]] of sql/project.toml. Re-applied whenever the
-- catalogue there changes (its rendered checksum changes). Plans are upserted, never deleted.
{% import "macros/common.sql" as m %}
INSERT INTO {{ m.q("subscription_plans") }} (code, name, price, currency, billing_interval, stripe_price_id, active)
VALUES
{%- for plan in plans %}
  ({{ plan.code | sql_literal }}, {{ plan.name | sql_literal }}, {{ plan.price | sql_literal }}::numeric,
   {{ plan.get("currency", settings.default_currency) | sql_literal }},
   {{ plan.get("interval", "month") | sql_literal }},
   NULLIF({{ plan.get("stripe_price_id", "") | sql_literal }}, ''), {{ "TRUE" if plan.get("active", true) else "FALSE" }})
  {{- "," if not loop.last }}
{%- endfor %}
ON CONFLICT (code) DO UPDATE
  SET name = EXCLUDED.name,
      price = EXCLUDED.price,
      currency = EXCLUDED.currency,
      billing_interval = EXCLUDED.billing_interval,
      stripe_price_id = EXCLUDED.stripe_price_id,
      active = EXCLUDED.active
  WHERE ({{ m.q("subscription_plans") }}.name, {{ m.q("subscription_plans") }}.price,
         {{ m.q("subscription_plans") }}.currency, {{ m.q("subscription_plans") }}.billing_interval,
         {{ m.q("subscription_plans") }}.stripe_price_id, {{ m.q("subscription_plans") }}.active)
        IS DISTINCT FROM
        (EXCLUDED.name, EXCLUDED.price, EXCLUDED.currency, EXCLUDED.billing_interval,
         EXCLUDED.stripe_price_id, EXCLUDED.active);
