-- Resolves sql/tests/user_plan_unknown.sql: as checkout_plan_unknown, for users.subscription_plan.
{% import "adopt/macros.sql" as a %}
{{ a.add_plans("users", "user_plan_unknown", "uuid", "subscription_plan", false) }}
