-- A session a Stripe event completed is still completed: nothing moves back from completed
{#- webhook_events.outcome is 'completed' for the delivery that completed the session
    (sql/functions/process_webhook_event.sql). Archived sessions have left the live table and are checked
    by archived_sessions_completed. -#}
{% import "macros/common.sql" as m %}
SELECT s.id, s.status, s.completed_at, e.stripe_event_id, e.topic, e.processed_at
  FROM {{ m.q("webhook_events") }} AS e
  JOIN {{ m.q("payment_checkout_sessions") }} AS s ON s.id = e.checkout_session_id
 WHERE e.outcome = 'completed'
   AND (s.status <> 'completed' OR s.completed_at IS NULL)
 ORDER BY e.processed_at, s.id
