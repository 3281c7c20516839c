-- Stripe's amounts: the plan price in the currency's minor units, as Stripe's amount_total counts them.
{% import "macros/common.sql" as m %}

CREATE OR REPLACE FUNCTION {{ m.q("stripe_amount_minor_units") }}(p_amount NUMERIC, p_currency TEXT)
RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
{{ m.pinned_search_path() }}
AS $$
  -- Stripe counts amounts in the currency's smallest unit; these currencies have no minor unit.
  SELECT round(p_amount * CASE WHEN lower(p_currency) IN ('bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga',
                                                          'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf')
                               THEN 1 ELSE 100 END)::bigint;
$$;

COMMENT ON FUNCTION {{ m.q("stripe_amount_minor_units") }}(NUMERIC, TEXT) IS
  'An amount in Stripe''s smallest currency unit: 29.99 usd -> 2999, 500 jpy -> 500.';
