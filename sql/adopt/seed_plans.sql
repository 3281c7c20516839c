-- runner adopt: the plans of sql/project.toml in the catalogue before the dirty-data rules judge plan codes
-- (sql/functions/plan_catalogue.sql, applied afterwards, keeps them in step as on any database).
{% import "macros/common.sql" as m %}
INSERT INTO {{ m.q("subscription_plans") }} (code, name, price, currency, billing_interval, stripe_price_id, active)
VALUES
{%- for plan in plans %}
  ({{ plan.code | sql_literal }}, {{ plan.name | sql_literal }}, {{ plan.price | sql_literal }}::numeric,
   {{ plan.get("currency", settings.default_currency) | sql_literal }}, {{ plan.get("interval", "month") | sql_literal }},
   NULLIF({{ plan.get("stripe_price_id", "") | sql_literal }}, ''), {{ "TRUE" if plan.get("active", true) else "FALSE" }})
  {{- "," if not loop.last }}
{%- endfor %}
ON CONFLICT (code) DO NOTHING
