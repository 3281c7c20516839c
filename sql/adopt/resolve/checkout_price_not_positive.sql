-- Resolves sql/tests/checkout_price_not_positive.sql: plan_price becomes the catalogue price of the plan.
{% import "adopt/macros.sql" as a %}
{% import "macros/common.sql" as m %}
{% call a.resolve("payment_checkout_sessions", "checkout_price_not_positive", "uuid") -%}
plan_price = coalesce((SELECT p.price FROM {{ m.q("subscription_plans") }} p WHERE p.code = s.subscription_plan),
                           s.plan_price)
{%- endcall %}
