"""Every query of the reference document runs unchanged against the applied schema."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from bench.reference import QUERIES, statements

# The reference document, kept in the repository (docs/reference/) so this test never skips in a clone.
REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "checkout-sessions-summary.md"
# The reference's one placeholder: a user id to look up.
PLACEHOLDER = "'user-uuid'"


@pytest.fixture
def seeded(conn, make_user):
    """Sessions of every status created today, plus webhook and error rows, so the reference's
    divisions by COUNT(*) have rows to divide by."""
    user = make_user("seed@example.com")
    # Two hours old, or half of today when the day is younger: "today" (created_at > CURRENT_DATE) must hold
    # them whatever the hour (a run just after midnight divided by zero).
    age = conn.execute(
        "SELECT least(interval '2 hours', (now() - current_date::timestamptz) / 2)"
    ).fetchone()[0]
    plans = {"basic": "9.99", "pro": "29.99", "enterprise": "99.99"}
    for i, (status, plan) in enumerate(
        [
            ("completed", "basic"),
            ("completed", "pro"),
            ("pending", "enterprise"),
            ("expired", "pro"),
            ("canceled", "basic"),
        ]
    ):
        other = make_user(f"u{i}@example.com")
        conn.execute(
            "INSERT INTO payment_checkout_sessions (user_id, email, subscription_plan, plan_price, payment_provider,"
            " status, completed_at, stripe_session_id, created_at, attempts) VALUES (%s, %s, %s, %s, 'stripe', %s,"
            " CASE WHEN %s = 'completed' THEN now() END, %s, now() - %s, 1)",
            (other, f"u{i}@example.com", plan, Decimal(plans[plan]), status, status, f"cs_seed_{i}", age),
        )
    conn.execute(
        "INSERT INTO webhook_events (stripe_event_id, topic, payload) VALUES "
        "('evt_1', 'checkout.session.completed', '{}'), ('evt_2', 'checkout.session.expired', '{}')"
    )
    conn.execute("INSERT INTO error_logs (category, message) VALUES ('database', 'seeded error')")
    return user


def test_reference_file_is_verbatim():
    blocks = [
        b
        for b in re.findall(r"```sql\n(.*?)```", REFERENCE.read_text(), re.DOTALL)
        if not b.lstrip().startswith("CREATE TABLE")
    ]
    data = QUERIES.read_text()
    for block in blocks:
        assert block.rstrip() in data


def test_there_are_all_reference_queries():
    assert len(statements()) == 18


@pytest.mark.parametrize("sql", statements(), ids=lambda s: re.sub(r"\s+", " ", s.splitlines()[0])[:60])
def test_reference_query_runs_unchanged(conn, seeded, sql):
    sql = sql.replace(PLACEHOLDER, f"'{seeded}'")
    try:
        cur = conn.execute(sql)
    except psycopg.Error as exc:  # pragma: no cover - the assertion message is the point
        pytest.fail(f"reference query failed: {exc}\n{sql}")
    if cur.description is not None:
        cur.fetchall()


def test_reference_conversion_rate_counts(conn, seeded):
    rate = conn.execute(
        "SELECT COUNT(CASE WHEN status = 'completed' THEN 1 END) * 100.0 / COUNT(*) as conversion_rate "
        "FROM payment_checkout_sessions WHERE created_at > NOW() - INTERVAL '30 days'"
    ).fetchone()[0]
    assert rate == Decimal(40)


def test_reference_support_queries_find_our_objects(conn):
    names = {r[0] for r in conn.execute("SELECT proname FROM pg_proc WHERE proname LIKE '%checkout%'")}
    assert {
        "get_or_create_checkout_session",
        "complete_checkout_session",
        "expire_old_checkout_sessions",
        "get_latest_checkout_session",
    } <= names
    indexes = {
        r[0]
        for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'payment_checkout_sessions'"
        )
    }
    assert {
        f"idx_payment_checkout_sessions_{s}"
        for s in ("user_id", "email", "status", "stripe_session", "pending", "expired")
    } <= indexes


def test_reference_cleanup_delete_runs(conn, make_user):
    user = make_user()
    conn.execute(
        "INSERT INTO payment_checkout_sessions (user_id, email, subscription_plan, plan_price, payment_provider,"
        " status, created_at, completed_at) VALUES (%s, 'a@example.com', 'pro', 29.99, 'stripe', 'completed',"
        " now() - interval '100 days', now() - interval '95 days')",
        (user,),
    )
    deleted = conn.execute(
        "DELETE FROM payment_checkout_sessions WHERE status = 'completed' AND completed_at < NOW() - INTERVAL '90 days'"
    ).rowcount
    assert deleted == 1


def test_placeholder_user_lookup_finds_the_user(conn, seeded):
    rows = conn.execute(f"SELECT * FROM users WHERE id = '{seeded}'").fetchall()
    assert len(rows) == 1 and uuid.UUID(str(rows[0][0])) == seeded
