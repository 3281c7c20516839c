-- Emails to send (checkout reminders, verification after payment). Queued in the same transaction as
-- the change that causes them; delivered by `runner job send-email`. dedupe_key makes "at most one
-- reminder per session" a database rule.
{% import "macros/common.sql" as m %}
CREATE TABLE {{ m.q("email_outbox") }} (
  id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind                VARCHAR(50) NOT NULL,
  dedupe_key          VARCHAR(255) NOT NULL,
  recipient           VARCHAR(255) NOT NULL,
  user_id             UUID REFERENCES {{ m.q("users") }} (id) ON DELETE CASCADE,
  -- No foreign key: archiving or deleting old sessions must never be blocked by their mail.
  checkout_session_id UUID,
  context             JSONB NOT NULL DEFAULT '{}'::jsonb,
  status              VARCHAR(20) NOT NULL DEFAULT 'queued',
  attempts            INTEGER NOT NULL DEFAULT 0,
  last_error          TEXT,
  created_at          TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
  next_attempt_at     TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
  sent_at             TIMESTAMP WITH TIME ZONE,
  CONSTRAINT email_outbox_dedupe_key_key UNIQUE (dedupe_key),
  CONSTRAINT email_outbox_kind_format CHECK (kind ~ '^[a-z][a-z0-9_]{0,49}$'),
  CONSTRAINT email_outbox_status_known CHECK (status IN ('queued', 'sent', 'failed')),
  CONSTRAINT email_outbox_attempts_nonnegative CHECK (attempts >= 0)
);

CREATE INDEX idx_email_outbox_due ON {{ m.q("email_outbox") }} (next_attempt_at) WHERE status = 'queued';
CREATE INDEX idx_email_outbox_session ON {{ m.q("email_outbox") }} (checkout_session_id);

COMMENT ON TABLE {{ m.q("email_outbox") }} IS
  'Outbox of emails: queued with the change that causes them, delivered (and retried) by the send-email job.';
