-- Resolves sql/tests/checkout_plan_unknown.sql: each plan code missing from the catalogue is added to
-- subscription_plans as an inactive plan (price: the median positive price its sessions were charged), so it
-- can be reported on but not bought. A code outside the catalogue's format is normalised on the row
-- ('Team Plan' -> 'team-plan'; the original in metadata.adoption_original_plan).
{% import "adopt/macros.sql" as a %}
{{ a.add_plans("payment_checkout_sessions", "checkout_plan_unknown", "uuid", "subscription_plan", true) }}
