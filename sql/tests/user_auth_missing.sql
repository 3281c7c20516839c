-- Supabase: users whose id has no auth.users row (users.id references auth.users there)
{% import "macros/common.sql" as m %}
{% if settings.platform == "supabase" %}
SELECT u.id, u.email, u.created_at
  FROM {{ m.q("users") }} u
 WHERE NOT EXISTS (SELECT 1 FROM auth.users a WHERE a.id = u.id)
{% else %}
SELECT NULL::uuid AS id, NULL::text AS email, NULL::timestamptz AS created_at WHERE false
{% endif %}
