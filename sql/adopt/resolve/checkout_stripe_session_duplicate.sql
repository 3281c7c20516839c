-- Resolves sql/tests/checkout_stripe_session_duplicate.sql: of the rows sharing a Stripe session id, the
-- completed one (else the newest) keeps it; the others' stripe_session_id becomes NULL, the id kept in
-- metadata.adoption_original_stripe_session_id.
{% import "adopt/macros.sql" as a %}
{% call a.resolve("payment_checkout_sessions", "checkout_stripe_session_duplicate", "uuid") -%}
stripe_session_id = NULL,
         metadata = coalesce(s.metadata, '{}'::jsonb)
                    || jsonb_build_object('adoption_original_stripe_session_id', s.stripe_session_id)
{%- endcall %}
