-- Users without an email
{% import "macros/common.sql" as m %}
SELECT id, email, created_at
  FROM {{ m.q("users") }}
 WHERE email IS NULL
