-- Resolves sql/tests/checkout_attempts_invalid.sql: a NULL or negative attempts becomes 0.
{% import "adopt/macros.sql" as a %}
{% call a.resolve("payment_checkout_sessions", "checkout_attempts_invalid", "uuid") -%}
attempts = greatest(coalesce(s.attempts, 0), 0)
{%- endcall %}
