-- subscription_plans holds every plan of sql/project.toml with its name, price, currency, interval and switch
{#- Prices come from the catalogue, never from the client; sql/functions/plan_catalogue.sql upserts it on
    apply. A difference means someone edited the table by hand (the next apply puts it back) or project.toml
    changed without an apply. Plans only in the table (removed from project.toml) are allowed: kept, never
    deleted. -#}
{% import "macros/common.sql" as m %}
WITH catalogue (code, name, price, currency, billing_interval, active) AS (
{%- if not plans %}
  SELECT NULL::text, NULL::text, NULL::numeric, NULL::text, NULL::text, NULL::boolean WHERE false
{%- else %}
  VALUES
{%- for plan in plans %}
    ({{ plan.code | sql_literal }}::text, {{ plan.name | sql_literal }}::text, {{ plan.price | sql_literal }}::numeric,
     {{ plan.get("currency", settings.default_currency) | sql_literal }}::text,
     {{ plan.get("interval", "month") | sql_literal }}::text, {{ "TRUE" if plan.get("active", true) else "FALSE" }})
    {{- "," if not loop.last }}
{%- endfor %}
{%- endif %}
)
SELECT c.code, c.price AS project_price, p.price AS table_price, c.active AS project_active, p.active AS table_active
  FROM catalogue AS c
  LEFT JOIN {{ m.q("subscription_plans") }} AS p ON p.code = c.code
 WHERE p.code IS NULL
    OR (c.name, c.price, c.currency, c.billing_interval, c.active)
       IS DISTINCT FROM (p.name::text, p.price, p.currency::text, p.billing_interval::text, p.active)
 ORDER BY c.code
