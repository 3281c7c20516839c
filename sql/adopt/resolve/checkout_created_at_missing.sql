-- Resolves sql/tests/checkout_created_at_missing.sql: created_at becomes expires_at minus the expiry
-- ({{ settings.expiry_hours }} hours), else completed_at, else the time of the adoption.
{% import "adopt/macros.sql" as a %}
{% call a.resolve("payment_checkout_sessions", "checkout_created_at_missing", "uuid") -%}
created_at = coalesce(s.expires_at - interval '{{ settings.expiry_hours }} hours', s.completed_at, now())
{%- endcall %}
