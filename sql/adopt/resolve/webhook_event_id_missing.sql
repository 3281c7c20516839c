-- Resolves sql/tests/webhook_event_id_missing.sql: the Stripe event id from the payload when no other row has
-- it, else 'adopted:<row id>' (never a Stripe id, so a real delivery of that event is still processed).
{% import "adopt/macros.sql" as a %}
{% import "macros/common.sql" as m %}
{% call a.resolve("webhook_events", "webhook_event_id_missing", "bigint") -%}
stripe_event_id = CASE WHEN s.payload->>'id' IS NOT NULL
                             AND NOT EXISTS (SELECT 1 FROM {{ m.q("webhook_events") }} o
                                              WHERE o.stripe_event_id = s.payload->>'id')
                        THEN left(s.payload->>'id', 255)
                        ELSE 'adopted:' || s.id END
{%- endcall %}
