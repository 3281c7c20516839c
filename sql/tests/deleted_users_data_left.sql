-- Nothing is left of a deleted user: no archived session, no Stripe session id whose user is gone (docs/audit-trail.md)
{% import "macros/common.sql" as m %}
SELECT 'payment_checkout_sessions_archive' AS table_name, a.id::text AS row_id, a.user_id
  FROM {{ m.q("payment_checkout_sessions_archive") }} AS a
 WHERE NOT EXISTS (SELECT 1 FROM {{ m.q("users") }} AS u WHERE u.id = a.user_id)
UNION ALL
SELECT 'payment_checkout_stripe_sessions', h.stripe_session_id, h.user_id
  FROM {{ m.q("payment_checkout_stripe_sessions") }} AS h
 WHERE NOT EXISTS (SELECT 1 FROM {{ m.q("users") }} AS u WHERE u.id = h.user_id)
 ORDER BY 1, 2
