-- Checkout sessions with a completed_at whose (known) status is not completed
{% import "macros/common.sql" as m %}
SELECT id, status, completed_at, created_at
  FROM {{ m.q("payment_checkout_sessions") }}
 WHERE completed_at IS NOT NULL AND status IN {{ m.status_list() }} AND status <> 'completed'
