-- Every live checkout row's current Stripe session is in payment_checkout_stripe_sessions, as its own and not replaced (docs/audit-trail.md)
{% import "macros/common.sql" as m %}
SELECT s.id, s.stripe_session_id, h.checkout_session_id AS history_checkout_session_id, h.replaced_at
  FROM {{ m.q("payment_checkout_sessions") }} AS s
  LEFT JOIN {{ m.q("payment_checkout_stripe_sessions") }} AS h ON h.stripe_session_id = s.stripe_session_id
 WHERE s.stripe_session_id IS NOT NULL
   AND (h.checkout_session_id IS DISTINCT FROM s.id OR h.replaced_at IS NOT NULL)
 ORDER BY s.id
