-- Resolves sql/tests/checkout_completed_without_time.sql: completed_at becomes created_at (the earliest it
-- can have completed; the true time is unknown, the log shows it was missing).
{% import "adopt/macros.sql" as a %}
{% call a.resolve("payment_checkout_sessions", "checkout_completed_without_time", "uuid") -%}
completed_at = coalesce(s.created_at, s.expires_at, now())
{%- endcall %}
