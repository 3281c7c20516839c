-- Resolves sql/tests/webhook_event_id_duplicate.sql: the oldest row keeps the event id; a later one becomes
-- '<event id>:duplicate:<row id>', so every delivery stays queryable by topic and time.
{% import "adopt/macros.sql" as a %}
{% call a.resolve("webhook_events", "webhook_event_id_duplicate", "bigint") -%}
stripe_event_id = left(s.stripe_event_id, 200) || ':duplicate:' || s.id
{%- endcall %}
