-- Resolves sql/tests/error_log_incomplete.sql: a missing category becomes 'uncategorized', a missing message
-- '', a missing created_at the time of the adoption.
{% import "adopt/macros.sql" as a %}
{% call a.resolve("error_logs", "error_log_incomplete", "bigint") -%}
category = coalesce(s.category, 'uncategorized'),
         message = coalesce(s.message, ''),
         created_at = coalesce(s.created_at, now())
{%- endcall %}
