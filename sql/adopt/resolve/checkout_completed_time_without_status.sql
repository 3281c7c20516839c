-- Resolves sql/tests/checkout_completed_time_without_status.sql: a pending or expired row with a
-- completed_at was paid (the project records a payment Stripe confirms even on an expired row): it becomes
-- 'completed'. A canceled or failed row keeps its status; its completed_at moves to
-- metadata.adoption_original_completed_at.
{% import "adopt/macros.sql" as a %}
{% call a.resolve("payment_checkout_sessions", "checkout_completed_time_without_status", "uuid") -%}
status = CASE WHEN s.status IN ('pending', 'expired') THEN 'completed' ELSE s.status END,
         completed_at = CASE WHEN s.status IN ('pending', 'expired') THEN s.completed_at END,
         metadata = CASE WHEN s.status IN ('pending', 'expired') THEN coalesce(s.metadata, '{}'::jsonb)
                         ELSE coalesce(s.metadata, '{}'::jsonb)
                              || jsonb_build_object('adoption_original_completed_at', s.completed_at) END
{%- endcall %}
