-- Where the weekly cleanup job moves completed sessions older than the retention: the audit trail the
-- reference promises, kept out of the live table. Same columns as payment_checkout_sessions (copied with
-- LIKE, so columns added before this file are included), plus when the row was archived.
-- No foreign key to users on purpose: an archived payment stays on record, and nothing here references the
-- live table, so the reference's plain DELETE of old completed sessions still works for a DBA.
-- A column added to payment_checkout_sessions later must be added here too:
-- archive_completed_checkout_sessions() refuses to run (and names the column) until it is.
{% import "macros/common.sql" as m %}
CREATE TABLE {{ m.q("payment_checkout_sessions_archive") }} (
  LIKE {{ m.q("payment_checkout_sessions") }} INCLUDING DEFAULTS INCLUDING COMMENTS,
  archived_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
  CONSTRAINT payment_checkout_sessions_archive_pkey PRIMARY KEY (id)
);

CREATE INDEX idx_payment_checkout_sessions_archive_user_id
  ON {{ m.q("payment_checkout_sessions_archive") }} (user_id, created_at DESC);
CREATE INDEX idx_payment_checkout_sessions_archive_completed_at
  ON {{ m.q("payment_checkout_sessions_archive") }} (completed_at);
CREATE INDEX idx_payment_checkout_sessions_archive_stripe_session
  ON {{ m.q("payment_checkout_sessions_archive") }} (stripe_session_id);

COMMENT ON TABLE {{ m.q("payment_checkout_sessions_archive") }} IS
  'Completed checkout sessions past the retention, moved here by `runner job cleanup`; never deleted by the runner.';
COMMENT ON COLUMN {{ m.q("payment_checkout_sessions_archive") }}.archived_at IS
  'When the cleanup job moved the row out of payment_checkout_sessions.';
