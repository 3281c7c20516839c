-- The per-user rate limit of create-checkout (runner/payments/checkout.py): one row per Stripe Checkout
-- Session a user's request was allowed to create, kept for the limit's window. take_stripe_session_quota()
-- counts and adds rows under a per-user lock, so the limit holds across service processes and concurrent
-- requests; it also deletes the user's rows older than the window, so a user has at most `limit` rows.
{% import "macros/common.sql" as m %}
CREATE TABLE {{ m.q("checkout_stripe_session_quota") }} (
  user_id  UUID NOT NULL REFERENCES {{ m.q("users") }} (id) ON DELETE CASCADE,
  taken_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX idx_checkout_stripe_session_quota_user ON {{ m.q("checkout_stripe_session_quota") }} (user_id, taken_at);

COMMENT ON TABLE {{ m.q("checkout_stripe_session_quota") }} IS
  'Stripe Checkout Sessions created for each user within the rate limit''s window (take_stripe_session_quota).';
