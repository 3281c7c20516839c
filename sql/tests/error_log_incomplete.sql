-- Error log rows without a category, a message or a created_at
{% import "macros/common.sql" as m %}
SELECT id, category, created_at
  FROM {{ m.q("error_logs") }}
 WHERE category IS NULL OR message IS NULL OR created_at IS NULL
