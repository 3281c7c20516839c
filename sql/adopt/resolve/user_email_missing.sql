-- Resolves sql/tests/user_email_missing.sql: the email of the user's newest checkout session, else
-- unknown-<id>@adopted.invalid (an address that can never receive mail).
{% import "adopt/macros.sql" as a %}
{% import "macros/common.sql" as m %}
{% call a.resolve("users", "user_email_missing", "uuid") -%}
email = coalesce((SELECT c.email FROM {{ m.q("payment_checkout_sessions") }} c
                   WHERE c.user_id = s.id ORDER BY c.created_at DESC NULLS LAST, c.id DESC LIMIT 1),
                  'unknown-' || s.id || '@adopted.invalid')
{%- endcall %}
