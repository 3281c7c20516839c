-- What the Stripe checkout flow (runner/checkout.py) and the webhook (runner/webhook.py) keep beyond the
-- reference: how many Stripe sessions a row has had (the idempotency key of the next one), and, per
-- webhook event, what processing it did and to which checkout session.
{% import "macros/common.sql" as m %}
ALTER TABLE {{ m.q("payment_checkout_sessions") }}
  ADD COLUMN stripe_sessions_created INTEGER NOT NULL DEFAULT 0,
  ADD CONSTRAINT payment_checkout_sessions_stripe_sessions_nonnegative CHECK (stripe_sessions_created >= 0);

COMMENT ON COLUMN {{ m.q("payment_checkout_sessions") }}.stripe_sessions_created IS
  'How many Stripe Checkout sessions were linked to this row; the next one is created with the idempotency '
  'key <id>:<this number>, so a retried or doubled request cannot create a second Stripe session.';

ALTER TABLE {{ m.q("webhook_events") }}
  ADD COLUMN outcome             TEXT,
  ADD COLUMN checkout_session_id UUID,
  ADD COLUMN last_delivered_at   TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now();

-- Support: "what did Stripe tell us about this checkout?" No foreign key, like email_outbox: archiving
-- sessions must never be blocked by their events.
CREATE INDEX idx_webhook_events_checkout_session ON {{ m.q("webhook_events") }} (checkout_session_id)
  WHERE checkout_session_id IS NOT NULL;

COMMENT ON COLUMN {{ m.q("webhook_events") }}.outcome IS
  'What processing did, for people: completed, already completed, awaiting payment, expired, unchanged: ...';
COMMENT ON COLUMN {{ m.q("webhook_events") }}.deliveries IS
  'How many times Stripe delivered this event id (duplicates are acknowledged, never re-applied).';
