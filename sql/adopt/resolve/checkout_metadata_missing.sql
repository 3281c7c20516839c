-- Resolves sql/tests/checkout_metadata_missing.sql: a NULL metadata becomes the empty object.
{% import "adopt/macros.sql" as a %}
{% call a.resolve("payment_checkout_sessions", "checkout_metadata_missing", "uuid") -%}
metadata = '{}'::jsonb
{%- endcall %}
