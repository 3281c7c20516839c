-- Resolves sql/tests/checkout_status_unknown.sql: a status that is a known one but for case or spaces becomes
-- it; otherwise 'completed' when completed_at says it was paid, else 'failed'. The original status stays on
-- the row (metadata.adoption_original_status) and in runner_adoption_log.
{% import "adopt/macros.sql" as a %}
{% import "macros/common.sql" as m %}
{% call a.resolve("payment_checkout_sessions", "checkout_status_unknown", "uuid") -%}
status = CASE WHEN lower(btrim(s.status)) IN {{ m.status_list() }} THEN lower(btrim(s.status))
                   WHEN s.completed_at IS NOT NULL THEN 'completed'
                   ELSE 'failed' END,
         metadata = coalesce(s.metadata, '{}'::jsonb) || jsonb_build_object('adoption_original_status', s.status)
{%- endcall %}
