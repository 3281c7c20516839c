-- Checkout sessions whose status is not one the project knows (pending, completed, expired, canceled, failed), or NULL
{% import "macros/common.sql" as m %}
SELECT id, status, completed_at, created_at
  FROM {{ m.q("payment_checkout_sessions") }}
 WHERE status IS NULL OR status NOT IN {{ m.status_list() }}
