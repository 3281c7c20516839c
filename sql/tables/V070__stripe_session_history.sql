-- Every Stripe Checkout session a checkout row has ever had (the reference's "every payment attempt is
-- logged"). payment_checkout_sessions.stripe_session_id holds the current one only: a checkout resumed after
-- its Stripe session expired gets a new one, and the old cs_... a customer's email or Stripe's dashboard
-- shows must still lead to the row. Filled by triggers on payment_checkout_sessions
-- (sql/functions/stripe_session_history.sql), whoever writes the column; read by the webhook, the API's
-- ?stripeSessionId= lookup and the reports.
-- No foreign key to payment_checkout_sessions on purpose: archiving moves rows to
-- payment_checkout_sessions_archive and their Stripe sessions stay findable. user_id is kept so that deleting
-- a user removes these rows too (sql/functions/forget_user.sql).
{% import "macros/common.sql" as m %}
CREATE TABLE {{ m.q("payment_checkout_stripe_sessions") }} (
  stripe_session_id   VARCHAR(255) PRIMARY KEY,
  checkout_session_id UUID NOT NULL,
  user_id             UUID NOT NULL,
  linked_at           TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
  replaced_at         TIMESTAMP WITH TIME ZONE,
  CONSTRAINT payment_checkout_stripe_sessions_replaced_after_linked CHECK (replaced_at >= linked_at)
);

CREATE INDEX idx_payment_checkout_stripe_sessions_checkout
  ON {{ m.q("payment_checkout_stripe_sessions") }} (checkout_session_id, linked_at);
CREATE INDEX idx_payment_checkout_stripe_sessions_user
  ON {{ m.q("payment_checkout_stripe_sessions") }} (user_id);
-- The retry report counts Stripe sessions by when they were linked.
CREATE INDEX idx_payment_checkout_stripe_sessions_linked_at
  ON {{ m.q("payment_checkout_stripe_sessions") }} (linked_at);

-- What the rows already hold: their current Stripe session (the earlier ones were overwritten before this
-- table existed). linked_at is the best time known: when the row was last updated (live) or created (archive).
INSERT INTO {{ m.q("payment_checkout_stripe_sessions") }} (stripe_session_id, checkout_session_id, user_id, linked_at)
SELECT stripe_session_id, id, user_id, least(updated_at, now())
  FROM {{ m.q("payment_checkout_sessions") }}
 WHERE stripe_session_id IS NOT NULL
ON CONFLICT (stripe_session_id) DO NOTHING;

INSERT INTO {{ m.q("payment_checkout_stripe_sessions") }} (stripe_session_id, checkout_session_id, user_id, linked_at)
SELECT stripe_session_id, id, user_id, least(created_at, now())
  FROM {{ m.q("payment_checkout_sessions_archive") }}
 WHERE stripe_session_id IS NOT NULL
ON CONFLICT (stripe_session_id) DO NOTHING;

COMMENT ON TABLE {{ m.q("payment_checkout_stripe_sessions") }} IS
  'Every Stripe Checkout session linked to a checkout session (live or archived), the current one included; '
  'kept when the row moves on to a new Stripe session or to the archive, removed with its user.';
COMMENT ON COLUMN {{ m.q("payment_checkout_stripe_sessions") }}.replaced_at IS
  'When the checkout session was linked to a newer Stripe session (NULL: the current one).';
