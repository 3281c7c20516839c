-- Resolves sql/tests/checkout_pending_duplicate.sql: of several pending sessions of one user and plan, the
-- newest stays pending and the older ones become 'expired' (what the expire job does to a stale checkout).
{% import "adopt/macros.sql" as a %}
{% call a.resolve("payment_checkout_sessions", "checkout_pending_duplicate", "uuid") -%}
status = 'expired'
{%- endcall %}
