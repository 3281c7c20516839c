-- Every session a Stripe event completed has its verification email in the outbox (queued, sent or failed)
{#- The webhook queues it in the same transaction as the completion (enqueue_email('verification', ...,
    'verification:' || id)). 'failed' counts as there: the address refused it, which the outbox records in
    last_error (a delivery outcome, not a broken rule); a missing or canceled one never reached anyone.
    Sessions completed by hand (complete_checkout_session in psql, an adopted history) have no such event
    and are not checked. -#}
{% import "macros/common.sql" as m %}
SELECT s.id, s.user_id, s.email, s.completed_at, e.stripe_event_id, o.status AS email_status
  FROM {{ m.q("webhook_events") }} AS e
  JOIN {{ m.q("payment_checkout_sessions") }} AS s ON s.id = e.checkout_session_id
  LEFT JOIN {{ m.q("email_outbox") }} AS o ON o.dedupe_key = 'verification:' || s.id::text
 WHERE e.outcome = 'completed'
   AND s.status = 'completed'
   AND (o.id IS NULL OR o.status NOT IN ('queued', 'sent', 'failed'))
 ORDER BY s.completed_at, s.id
