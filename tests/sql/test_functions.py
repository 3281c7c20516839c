"""The reference's four functions and the table rules, against a real applied database."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import psycopg
import pytest


def count(
    conn: psycopg.Connection, sql: str = "SELECT count(*) FROM payment_checkout_sessions", *args
) -> int:
    return conn.execute(sql, args or None).fetchone()[0]


def create(conn, user_id, plan="pro", price=Decimal("29.99"), email="a@example.com", provider="stripe"):
    return conn.execute(
        "SELECT get_or_create_checkout_session(p_user_id => %s, p_email => %s, p_plan => %s, "
        "p_price => %s, p_provider => %s)",
        (user_id, email, plan, price, provider),
    ).fetchone()[0]


def test_plans_seeded_from_project_config(conn):
    plans = dict(conn.execute("SELECT code, price FROM subscription_plans WHERE active").fetchall())
    assert plans == {"basic": Decimal("9.99"), "pro": Decimal("29.99"), "enterprise": Decimal("99.99")}


def test_create_then_resume_increments_attempts(conn, make_user):
    user = make_user()
    first = create(conn, user)
    again = create(conn, user)
    assert first == again
    row = conn.execute(
        "SELECT status, attempts, plan_price, payment_provider, currency, expires_at - created_at "
        "FROM payment_checkout_sessions WHERE id = %s",
        (first,),
    ).fetchone()
    assert row[:5] == ("pending", 2, Decimal("29.99"), "stripe", "usd")
    assert row[5].total_seconds() == 24 * 3600


def test_price_may_be_omitted_and_comes_from_catalogue(conn, make_user):
    user = make_user()
    sid = conn.execute(
        "SELECT get_or_create_checkout_session(%s, 'b@example.com', 'basic')", (user,)
    ).fetchone()[0]
    assert count(conn, "SELECT plan_price FROM payment_checkout_sessions WHERE id = %s", sid) == Decimal(
        "9.99"
    )


def test_other_plan_gets_its_own_session(conn, make_user):
    user = make_user()
    assert create(conn, user, "pro") != create(conn, user, "basic", Decimal("9.99"))
    assert count(conn, "SELECT count(*) FROM payment_checkout_sessions WHERE status = 'pending'") == 2


def test_overdue_pending_session_is_expired_and_replaced(conn, make_user):
    user = make_user()
    old = create(conn, user)
    conn.execute(
        "UPDATE payment_checkout_sessions SET created_at = now() - interval '2 days', "
        "expires_at = now() - interval '1 day' WHERE id = %s",
        (old,),
    )
    new = create(conn, user)
    assert new != old
    assert (
        conn.execute("SELECT status FROM payment_checkout_sessions WHERE id = %s", (old,)).fetchone()[0]
        == "expired"
    )


@pytest.mark.parametrize(
    "kwargs, sqlstate, message",
    [
        ({"email": "not-an-email"}, "22023", "not an email address"),
        ({"email": "a b@example.com"}, "22023", "not an email address"),
        ({"email": "x" * 250 + "@example.com"}, "22023", "not an email address"),
        ({"plan": "platinum"}, "22023", "unknown plan"),
        ({"price": Decimal("1.00")}, "22023", "does not match the catalogue price"),
        ({"price": Decimal(0)}, "22023", "must be positive"),
        ({"price": Decimal("-29.99")}, "22023", "must be positive"),
        ({"provider": "paypal"}, "22023", "unknown payment provider"),
    ],
)
def test_refusals_raise_and_write_nothing(conn, make_user, kwargs, sqlstate, message):
    user = make_user()
    with pytest.raises(psycopg.Error) as info:
        create(conn, user, **kwargs)
    assert info.value.sqlstate == sqlstate
    assert message in str(info.value)
    assert count(conn) == 0


def test_unknown_user_refused(conn):
    with pytest.raises(psycopg.errors.NoDataFound, match="unknown user"):
        create(conn, uuid.uuid4())
    assert count(conn) == 0


def test_inactive_plan_refused(conn, make_user):
    conn.execute("UPDATE subscription_plans SET active = false WHERE code = 'enterprise'")
    with pytest.raises(psycopg.Error, match="not active") as info:
        create(conn, make_user(), "enterprise", Decimal("99.99"))
    assert info.value.sqlstate == "22023"
    assert count(conn) == 0


def test_concurrent_get_or_create_gives_one_pending_row(db_url, conn, make_user):
    user = make_user()
    barrier = threading.Barrier(32)
    results, errors = [], []

    def worker():
        try:
            with psycopg.connect(db_url, autocommit=True) as c:
                barrier.wait()
                results.append(create(c, user))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    assert conn.execute(
        "SELECT count(*), max(attempts) FROM payment_checkout_sessions WHERE status = 'pending'"
    ).fetchone() == (1, 32)


def test_one_pending_per_user_and_plan_is_a_database_rule(conn, make_user):
    user = make_user()
    create(conn, user)
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO payment_checkout_sessions (user_id, email, subscription_plan, plan_price, payment_provider) "
            "VALUES (%s, 'a@example.com', 'pro', 29.99, 'stripe')",
            (user,),
        )


def test_complete_marks_completed_and_activates_subscription(conn, make_user):
    user = make_user()
    sid = create(conn, user)
    assert (
        conn.execute("SELECT complete_checkout_session(%s, 'cs_test_1', 'cus_1')", (sid,)).fetchone()[0]
        is True
    )
    row = conn.execute(
        "SELECT s.status, s.completed_at IS NOT NULL, s.stripe_session_id, s.stripe_customer_id, "
        "u.subscription_status, u.subscription_plan, u.stripe_customer_id "
        "FROM payment_checkout_sessions s JOIN users u ON u.id = s.user_id WHERE s.id = %s",
        (sid,),
    ).fetchone()
    assert row == ("completed", True, "cs_test_1", "cus_1", "active", "pro", "cus_1")


def test_complete_is_idempotent(conn, make_user):
    sid = create(conn, make_user())
    conn.execute("SELECT complete_checkout_session(%s, 'cs_test_2', 'cus_2')", (sid,))
    first = conn.execute(
        "SELECT completed_at FROM payment_checkout_sessions WHERE id = %s", (sid,)
    ).fetchone()[0]
    assert (
        conn.execute("SELECT complete_checkout_session(%s, 'cs_test_2', 'cus_2')", (sid,)).fetchone()[0]
        is False
    )
    assert (
        conn.execute("SELECT completed_at FROM payment_checkout_sessions WHERE id = %s", (sid,)).fetchone()[0]
        == first
    )


def test_complete_after_local_expiry_completes(conn, make_user):
    sid = create(conn, make_user())
    conn.execute("UPDATE payment_checkout_sessions SET status = 'expired' WHERE id = %s", (sid,))
    conn.execute("SELECT complete_checkout_session(%s, 'cs_test_3', NULL)", (sid,))
    assert (
        conn.execute("SELECT status FROM payment_checkout_sessions WHERE id = %s", (sid,)).fetchone()[0]
        == "completed"
    )


def test_complete_unknown_session_is_an_error(conn):
    with pytest.raises(psycopg.errors.NoDataFound, match="unknown checkout session"):
        conn.execute("SELECT complete_checkout_session(%s, 'cs_x', NULL)", (uuid.uuid4(),))


def test_complete_refuses_a_different_stripe_session(conn, make_user):
    sid = create(conn, make_user())
    conn.execute("UPDATE payment_checkout_sessions SET stripe_session_id = 'cs_right' WHERE id = %s", (sid,))
    with pytest.raises(psycopg.Error, match="belongs to Stripe session cs_right") as info:
        conn.execute("SELECT complete_checkout_session(%s, 'cs_wrong', NULL)", (sid,))
    assert info.value.sqlstate == "22023"
    assert (
        conn.execute("SELECT status FROM payment_checkout_sessions WHERE id = %s", (sid,)).fetchone()[0]
        == "pending"
    )


@pytest.mark.parametrize(
    "start, target",
    [
        ("completed", "pending"),
        ("completed", "expired"),
        ("expired", "pending"),
        ("canceled", "pending"),
        ("failed", "expired"),
        ("completed", "canceled"),
    ],
)
def test_no_backward_transitions(conn, make_user, start, target):
    sid = create(conn, make_user())
    if start == "completed":
        conn.execute("SELECT complete_checkout_session(%s, 'cs_t', NULL)", (sid,))
    else:
        conn.execute("UPDATE payment_checkout_sessions SET status = %s WHERE id = %s", (start, sid))
    with pytest.raises(psycopg.Error, match=f"cannot move from {start} to {target}") as info:
        conn.execute(
            "UPDATE payment_checkout_sessions SET status = %s, completed_at = NULL WHERE id = %s",
            (target, sid),
        )
    assert info.value.sqlstate == "55000"


def test_expire_old_sessions_counts_and_batches(conn, make_user):
    plans = [("basic", Decimal("9.99")), ("pro", Decimal("29.99")), ("enterprise", Decimal("99.99"))]
    ids = [create(conn, make_user(), plan, price) for plan, price in plans for _ in range(2)]
    conn.execute(
        "UPDATE payment_checkout_sessions SET created_at = now() - interval '30 hours', "
        "expires_at = now() - interval '6 hours' WHERE id = ANY(%s)",
        (ids[:5],),
    )
    assert conn.execute("SELECT expire_old_checkout_sessions(2)").fetchone()[0] == 2
    assert conn.execute("SELECT expire_old_checkout_sessions()").fetchone()[0] == 3
    assert conn.execute("SELECT expire_old_checkout_sessions()").fetchone()[0] == 0
    statuses = dict(
        conn.execute("SELECT status, count(*) FROM payment_checkout_sessions GROUP BY status").fetchall()
    )
    assert statuses == {"expired": 5, "pending": 1}


def test_expire_rejects_bad_batch(conn):
    with pytest.raises(psycopg.Error, match="must be positive") as info:
        conn.execute("SELECT expire_old_checkout_sessions(0)")
    assert info.value.sqlstate == "22023"


def test_get_latest_checkout_session(conn, make_user):
    user = make_user()
    assert conn.execute("SELECT count(*) FROM get_latest_checkout_session(%s)", (user,)).fetchone()[0] == 0
    create(conn, user, "basic", Decimal("9.99"))
    newest = create(conn, user, "pro")
    assert conn.execute("SELECT id FROM get_latest_checkout_session(%s)", (user,)).fetchone()[0] == newest


def test_expires_at_defaults_from_created_at(conn, make_user):
    user = make_user()
    row = conn.execute(
        "INSERT INTO payment_checkout_sessions (user_id, email, subscription_plan, plan_price, payment_provider, "
        "created_at) VALUES (%s, 'a@example.com', 'pro', 29.99, 'stripe', '2026-01-01T00:00:00Z') "
        "RETURNING expires_at, status",
        (user,),
    ).fetchone()
    assert row[0].isoformat().startswith("2026-01-02T00:00:00")
    assert row[1] == "pending"


def test_deleting_a_user_cascades(conn, make_user):
    user = make_user()
    create(conn, user)
    conn.execute("DELETE FROM users WHERE id = %s", (user,))
    assert count(conn) == 0


def test_functions_have_comments_and_pinned_search_path(conn):
    rows = conn.execute(
        "SELECT p.proname, obj_description(p.oid, 'pg_proc'), p.proconfig FROM pg_proc p "
        "WHERE p.proname IN ('get_or_create_checkout_session', 'complete_checkout_session', "
        "'expire_old_checkout_sessions', 'get_latest_checkout_session')"
    ).fetchall()
    assert len(rows) == 4
    for name, comment, config in rows:
        assert comment, name
        assert any(c.startswith("search_path=") for c in config or []), name


def test_enqueue_email_once_per_key(conn, make_user):
    user = make_user()
    first = conn.execute("SELECT enqueue_email('reminder', 'a@example.com', 'k1', %s)", (user,)).fetchone()[0]
    again = conn.execute("SELECT enqueue_email('reminder', 'a@example.com', 'k1', %s)", (user,)).fetchone()[0]
    assert first is not None and again is None
    assert count(conn, "SELECT count(*) FROM email_outbox") == 1
    with pytest.raises(psycopg.Error, match="not an email"):
        conn.execute("SELECT enqueue_email('reminder', 'nope', 'k2')")


def test_completing_by_hand_also_activates_the_subscription(conn, make_user):
    user = make_user()
    sid = create(conn, user, "basic", Decimal("9.99"))
    conn.execute("UPDATE payment_checkout_sessions SET status = 'completed' WHERE id = %s", (sid,))
    assert conn.execute(
        "SELECT subscription_status, subscription_plan FROM users WHERE id = %s", (user,)
    ).fetchone() == ("active", "basic")


def test_updating_an_old_completed_row_does_not_reactivate(conn, make_user):
    user = make_user()
    sid = create(conn, user)
    conn.execute("SELECT complete_checkout_session(%s, 'cs_old', NULL)", (sid,))
    conn.execute("UPDATE users SET subscription_status = 'canceled' WHERE id = %s", (user,))
    conn.execute("UPDATE payment_checkout_sessions SET metadata = '{\"note\": 1}' WHERE id = %s", (sid,))
    assert (
        conn.execute("SELECT subscription_status FROM users WHERE id = %s", (user,)).fetchone()[0]
        == "canceled"
    )
