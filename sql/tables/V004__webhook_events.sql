-- Every Stripe event the webhook accepted, keyed by Stripe's event id so each is processed at most once.
{% import "macros/common.sql" as m %}
CREATE TABLE {{ m.q("webhook_events") }} (
  id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  stripe_event_id VARCHAR(255) NOT NULL,
  topic           VARCHAR(255) NOT NULL,
  payload         JSONB NOT NULL,
  livemode        BOOLEAN NOT NULL DEFAULT FALSE,
  status          VARCHAR(20) NOT NULL DEFAULT 'received',
  error           TEXT,
  deliveries      INTEGER NOT NULL DEFAULT 1,
  created_at      TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
  processed_at    TIMESTAMP WITH TIME ZONE,
  CONSTRAINT webhook_events_stripe_event_id_key UNIQUE (stripe_event_id),
  CONSTRAINT webhook_events_status_known
    CHECK (status IN ('received', 'processed', 'ignored', 'failed', 'rejected'))
);

-- The reference's "check webhook logs" query: WHERE topic = ... ORDER BY created_at DESC.
CREATE INDEX idx_webhook_events_topic_created ON {{ m.q("webhook_events") }} (topic, created_at DESC);
CREATE INDEX idx_webhook_events_status ON {{ m.q("webhook_events") }} (status, created_at)
  WHERE status <> 'processed';

COMMENT ON TABLE {{ m.q("webhook_events") }} IS
  'Stripe events received by the webhook; stripe_event_id is unique so a redelivery is never re-applied.';
