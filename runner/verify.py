"""`runner verify`: the reference's "Verify Migration" and troubleshooting checks, run for real."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.project import Project

if TYPE_CHECKING:
    import psycopg

TABLES = ("payment_checkout_sessions", "users", "subscription_plans", "webhook_events", "error_logs")
FUNCTIONS = (
    "get_or_create_checkout_session",
    "complete_checkout_session",
    "expire_old_checkout_sessions",
    "get_latest_checkout_session",
)
INDEXES = (
    "idx_payment_checkout_sessions_user_id",
    "idx_payment_checkout_sessions_email",
    "idx_payment_checkout_sessions_status",
    "idx_payment_checkout_sessions_stripe_session",
    "idx_payment_checkout_sessions_pending",
    "idx_payment_checkout_sessions_expired",
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def run(conn: psycopg.Connection, project: Project) -> list[Check]:
    """Every check, in order; a check that cannot run is a failed check, not an exception."""
    schema = project.schema
    checks: list[Check] = []

    for table in TABLES:
        present = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{table}",)).fetchone()[0]
        checks.append(
            Check(f"table {table}", present, "exists" if present else "missing: run `runner apply`")
        )

    found = {
        r[0]
        for r in conn.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.proname = ANY(%s)",
            (schema, list(FUNCTIONS)),
        )
    }
    for fn in FUNCTIONS:
        checks.append(
            Check(f"function {fn}", fn in found, "exists" if fn in found else "missing: run `runner apply`")
        )

    indexes = {
        r[0]
        for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'payment_checkout_sessions'",
            (schema,),
        )
    }
    for ix in INDEXES:
        checks.append(
            Check(f"index {ix}", ix in indexes, "exists" if ix in indexes else "missing: run `runner apply`")
        )

    checks.append(_smoke_test(conn, project))
    return checks


def _smoke_test(conn: psycopg.Connection, project: Project) -> Check:
    """Create, resume, complete and expire a checkout in a transaction that is rolled back."""
    import psycopg

    name = "functions smoke test"
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(f"SET LOCAL search_path = {project.schema}, pg_temp")
            plan = conn.execute(
                "SELECT code, price FROM subscription_plans WHERE active ORDER BY price LIMIT 1"
            ).fetchone()
            if plan is None:
                return Check(name, False, "no active plan in subscription_plans (see sql/project.toml)")
            if project.settings["platform"] == "supabase":
                # users.id references auth.users there: a sign-up, whose trigger makes the users row.
                user_id = conn.execute(
                    "INSERT INTO auth.users (id, aud, role, email, created_at) VALUES "
                    "(gen_random_uuid(), 'authenticated', 'authenticated', 'verify@runner.invalid', now()) "
                    "RETURNING id"
                ).fetchone()[0]
            else:
                user_id = conn.execute(
                    "INSERT INTO users (email) VALUES ('verify@runner.invalid') RETURNING id"
                ).fetchone()[0]
            first = conn.execute(
                "SELECT get_or_create_checkout_session(%s, 'verify@runner.invalid', %s, %s, 'stripe')",
                (user_id, plan[0], plan[1]),
            ).fetchone()[0]
            again = conn.execute(
                "SELECT get_or_create_checkout_session(%s, 'verify@runner.invalid', %s, %s, 'stripe')",
                (user_id, plan[0], plan[1]),
            ).fetchone()[0]
            if first != again:
                return Check(name, False, "get_or_create_checkout_session made a second pending session")
            latest = conn.execute("SELECT id FROM get_latest_checkout_session(%s)", (user_id,)).fetchone()
            if latest is None or latest[0] != first:
                return Check(name, False, "get_latest_checkout_session did not return the new session")
            conn.execute("SELECT complete_checkout_session(%s, 'cs_verify_runner', 'cus_verify')", (first,))
            state = conn.execute(
                "SELECT s.status, u.subscription_status FROM payment_checkout_sessions s "
                "JOIN users u ON u.id = s.user_id WHERE s.id = %s",
                (first,),
            ).fetchone()
            if state != ("completed", "active"):
                return Check(name, False, f"after complete_checkout_session: session/user are {state}")
            expired = conn.execute("SELECT expire_old_checkout_sessions()").fetchone()[0]
            if not isinstance(expired, int):
                return Check(name, False, "expire_old_checkout_sessions() did not return a count")
    except psycopg.Error as exc:
        return Check(name, False, f"{exc.sqlstate or ''} {str(exc).splitlines()[0]}".strip())
    return Check(name, True, "create, resume, latest, complete, expire: ok (rolled back)")
