"""The dirty-data rules of an adoption: each a data test (sql/tests/<name>.sql, the rows that break it) and a
resolution (sql/adopt/resolve/<name>.sql, one batch of the documented change, logged row by row)."""

from __future__ import annotations

from dataclasses import dataclass

from runner.project import Project


@dataclass(frozen=True)
class Rule:
    """One invariant of the project that a reference-built database may break."""

    name: str
    table: str
    resolution: str  # what happens to an offending row, in one line (the plan and docs/adopting.md)


# In the order they run: a later rule may rely on an earlier one (the price of a plan needs the plan in
# the catalogue; the duplicate-pending rule needs statuses normalised first).
RULES: tuple[Rule, ...] = (
    Rule(
        "user_email_missing",
        "users",
        "email from the user's newest session, else unknown-<id>@adopted.invalid",
    ),
    Rule(
        "user_status_unknown",
        "users",
        "known spelling -> it; trialing -> active, unpaid -> past_due, cancelled -> canceled; else inactive",
    ),
    Rule(
        "user_plan_unknown",
        "users",
        "code added to subscription_plans as an inactive plan (normalised if needed)",
    ),
    Rule(
        "checkout_status_unknown",
        "payment_checkout_sessions",
        "known spelling -> it; else completed if completed_at is set, else failed; original kept in metadata",
    ),
    Rule(
        "checkout_created_at_missing",
        "payment_checkout_sessions",
        "created_at = expires_at - expiry, else completed_at, else adoption time",
    ),
    Rule("checkout_expiry_invalid", "payment_checkout_sessions", "expires_at = created_at + expiry"),
    Rule("checkout_completed_without_time", "payment_checkout_sessions", "completed_at = created_at"),
    Rule(
        "checkout_completed_time_without_status",
        "payment_checkout_sessions",
        "pending/expired -> completed; canceled/failed keep status, completed_at moved to metadata",
    ),
    Rule(
        "checkout_plan_unknown",
        "payment_checkout_sessions",
        "code added to subscription_plans as an inactive plan (normalised on the row if needed)",
    ),
    Rule(
        "checkout_price_not_positive", "payment_checkout_sessions", "plan_price = the plan's catalogue price"
    ),
    Rule(
        "checkout_user_missing",
        "payment_checkout_sessions",
        "the user is added back (id, newest session's email, inactive); on Supabase the session is deleted, logged",
    ),
    Rule(
        "user_auth_missing",
        "users",
        "Supabase only: the user and its sessions are deleted (no auth.users account), before-images logged",
    ),
    Rule("checkout_attempts_invalid", "payment_checkout_sessions", "attempts = 0"),
    Rule("checkout_metadata_missing", "payment_checkout_sessions", "metadata = {}"),
    Rule(
        "checkout_pending_duplicate",
        "payment_checkout_sessions",
        "the newest stays pending, older ones become expired",
    ),
    Rule(
        "checkout_stripe_session_duplicate",
        "payment_checkout_sessions",
        "the completed (else newest) row keeps the id; others' moves to metadata",
    ),
    Rule(
        "completed_sessions_activated_subscription",
        "users",
        "subscribed_at and plan from the newest completed session; inactive -> canceled (no access granted)",
    ),
    Rule(
        "webhook_event_incomplete",
        "webhook_events",
        "topic from the payload's type (else unknown), payload {}, created_at adoption time",
    ),
    Rule("webhook_event_id_missing", "webhook_events", "the payload's id if free, else adopted:<row id>"),
    Rule(
        "webhook_event_id_duplicate",
        "webhook_events",
        "the oldest keeps it; later rows get <id>:duplicate:<row id>",
    ),
    # Tables created by later files: resolved once those are applied (execute.py's last pass).
    Rule(
        "stripe_session_history_complete",
        "payment_checkout_stripe_sessions",
        "a live row's Stripe session missing from the history is added to it",
    ),
    Rule(
        "error_log_incomplete", "error_logs", "category uncategorized, message '', created_at adoption time"
    ),
)

BY_NAME = {r.name: r for r in RULES}


def resolution_sql(project: Project, rule: Rule) -> str:
    """The rendered statement resolving one batch of `rule` (parameters: after, batch)."""
    return project.render(f"adopt/resolve/{rule.name}.sql")


def catalogue_sql(project: Project, name: str) -> str:
    """A catalogue query of sql/adopt/catalogue/, rendered."""
    return project.render(f"adopt/catalogue/{name}.sql")
