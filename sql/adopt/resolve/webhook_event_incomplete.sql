-- Resolves sql/tests/webhook_event_incomplete.sql: a missing topic becomes the payload's type (else
-- 'unknown'), a missing payload '{}', a missing created_at the time of the adoption.
{% import "adopt/macros.sql" as a %}
{% call a.resolve("webhook_events", "webhook_event_incomplete", "bigint") -%}
topic = coalesce(s.topic, s.payload->>'type', 'unknown'),
         payload = coalesce(s.payload, '{}'::jsonb),
         created_at = coalesce(s.created_at, now())
{%- endcall %}
