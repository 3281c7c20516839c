-- Checkout sessions sharing a stripe_session_id with another row that keeps it (a completed row first, then the newest)
{% import "macros/common.sql" as m %}
SELECT id, stripe_session_id, status, created_at
  FROM (SELECT s.id, s.stripe_session_id, s.status, s.created_at,
               row_number() OVER (PARTITION BY s.stripe_session_id
                                  ORDER BY (s.status = 'completed') DESC, s.created_at DESC NULLS LAST, s.id DESC) AS rank
          FROM {{ m.q("payment_checkout_sessions") }} s
         WHERE s.stripe_session_id IS NOT NULL) ranked
 WHERE rank > 1
