"""A database built the way the reference's system builds it, hand-edited the way real teams do, holding a
year of rows with every kind of dirty row issue 12 names: what `runner adopt` is tested (and benchmarked) on.

The SQL is in tests/data/reference/: reference-support.sql (users, webhook_events, error_logs),
create-payment-checkout-sessions.sql (the reference's script), team-edits.sql (an extra column, a view, a
function calling complete_checkout_session, a trigger, an index), seed.sql (the rows).
"""

from __future__ import annotations

from pathlib import Path

import psycopg

REFERENCE = Path(__file__).resolve().parent / "data" / "reference"
SCRIPTS = ("reference-support.sql", "create-payment-checkout-sessions.sql", "team-edits.sql")


def dirty(sessions: int) -> dict[str, int]:
    """How many rows each rule of sql/tests/ finds in a reference database seeded with `sessions` clean
    sessions, before adoption."""
    return {
        "checkout_status_unknown": 5,
        "checkout_completed_without_time": 3,
        "checkout_completed_time_without_status": 3,
        "checkout_created_at_missing": 2,
        "checkout_expiry_invalid": 5,
        "checkout_price_not_positive": 3,
        "checkout_pending_duplicate": 4,
        "checkout_stripe_session_duplicate": 2,
        "checkout_plan_unknown": 5,
        "checkout_user_missing": 3,
        "checkout_attempts_invalid": 3,
        "checkout_metadata_missing": sessions // 5,
        "user_email_missing": 2,
        "user_status_unknown": 3,
        "user_plan_unknown": 2,
        "webhook_event_id_missing": 2,
        "webhook_event_id_duplicate": 2,
        "webhook_event_incomplete": 3,
        "error_log_incomplete": 3,
    }


def build_schema(conn: psycopg.Connection) -> None:
    """The reference's tables, functions and indexes, and the team's own objects; no rows."""
    for name in SCRIPTS:
        conn.execute((REFERENCE / name).read_text(encoding="utf-8"))


def seed(conn: psycopg.Connection, sessions: int = 2000, users: int | None = None) -> None:
    """A year of rows: `sessions` clean sessions plus the dirty ones of dirty(), users, webhook events and
    error logs."""
    users = users or max(50, sessions // 20)
    # Several statements with parameters: bound client-side (the values are our own numbers).
    with conn.transaction(), psycopg.ClientCursor(conn) as cursor:
        cursor.execute(
            (REFERENCE / "seed.sql").read_text(encoding="utf-8"),
            {
                "sessions": sessions,
                "users": users,
                "events": max(100, sessions // 2),
                "errors": max(30, sessions // 20),
            },
        )
    conn.execute("ANALYZE")


def build(url: str, sessions: int = 2000) -> None:
    """A reference database with rows, at `url` (an empty database)."""
    with psycopg.connect(url, autocommit=True) as conn:
        build_schema(conn)
        seed(conn, sessions)


def snapshot(conn: psycopg.Connection, table: str) -> dict[str, dict]:
    """Every row of a table as JSON, by id (text)."""
    return {str(r[0]): r[1] for r in conn.execute(f"SELECT id::text, to_jsonb(t) FROM {table} t")}
