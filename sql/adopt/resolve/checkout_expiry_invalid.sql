-- Resolves sql/tests/checkout_expiry_invalid.sql: expires_at becomes created_at plus the expiry
-- ({{ settings.expiry_hours }} hours), as a new session gets.
{% import "adopt/macros.sql" as a %}
{% call a.resolve("payment_checkout_sessions", "checkout_expiry_invalid", "uuid") -%}
expires_at = s.created_at + interval '{{ settings.expiry_hours }} hours'
{%- endcall %}
