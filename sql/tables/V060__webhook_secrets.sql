-- The Stripe webhook signing secrets the database checks each event against (record_webhook_event), so a
-- database credential alone cannot record a made-up event: only the owner reads or writes this table
-- (sql/functions/privileges.sql grants it to no role). Several rows at once while a secret is rotated.
-- Kept as HMAC-SHA256's two padded keys (key XOR ipad, key XOR opad; RFC 2104), so checking a signature is
-- two sha256() calls: the keys are as secret as the secret itself.
{% import "macros/common.sql" as m %}
CREATE TABLE {{ m.q("webhook_secrets") }} (
  id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  fingerprint VARCHAR(16) NOT NULL,
  hint        VARCHAR(40) NOT NULL,
  inner_key   BYTEA NOT NULL,
  outer_key   BYTEA NOT NULL,
  created_at  TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
  CONSTRAINT webhook_secrets_fingerprint_key UNIQUE (fingerprint),
  CONSTRAINT webhook_secrets_keys_are_blocks CHECK (octet_length(inner_key) = 64 AND octet_length(outer_key) = 64)
);

REVOKE ALL ON {{ m.q("webhook_secrets") }} FROM PUBLIC;

COMMENT ON TABLE {{ m.q("webhook_secrets") }} IS
  'Stripe webhook signing secrets (as HMAC padded keys), owner-only: `runner webhook secret set|list|remove`.';
COMMENT ON COLUMN {{ m.q("webhook_secrets") }}.fingerprint IS
  'The first 16 hex digits of sha256(secret): how `runner webhook secret list` and `remove` name a secret.';
COMMENT ON COLUMN {{ m.q("webhook_secrets") }}.hint IS
  'The secret''s prefix and last 4 characters (whsec_…abcd), for people.';

-- A signed event that cannot be processed as sent is kept as Stripe sent it, with the reason (error).
ALTER TABLE {{ m.q("webhook_events") }} ADD COLUMN raw_body TEXT;

COMMENT ON COLUMN {{ m.q("webhook_events") }}.raw_body IS
  'The body exactly as Stripe sent it, for a rejected event (its payload may not hold it faithfully).';
