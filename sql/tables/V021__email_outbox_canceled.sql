-- A queued reminder whose checkout was completed (or expired) before the mail went out is not sent:
-- it is marked 'canceled' instead, so nobody is asked to pay for something they already paid for.
{% import "macros/common.sql" as m %}
ALTER TABLE {{ m.q("email_outbox") }}
  DROP CONSTRAINT email_outbox_status_known,
  ADD CONSTRAINT email_outbox_status_known CHECK (status IN ('queued', 'sent', 'failed', 'canceled'));

COMMENT ON COLUMN {{ m.q("email_outbox") }}.status IS
  'queued: to send (again at next_attempt_at); sent; failed: gave up after attempts; canceled: no longer '
  'relevant when its turn came (a reminder for a checkout that is no longer pending).';
