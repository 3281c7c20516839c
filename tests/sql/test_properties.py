"""Property tests: random interleavings of create, complete, expire, cancel and illegal moves across
users and plans keep the invariants of DESIGN.md."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PLANS = {"basic": "9.99", "pro": "29.99", "enterprise": "99.99"}
ALLOWED = {("pending", s) for s in ("completed", "expired", "canceled", "failed")} | {
    (s, "completed") for s in ("expired", "canceled", "failed")
}

users = st.integers(0, 2)
plans = st.sampled_from(sorted(PLANS))
operation = st.one_of(
    st.tuples(st.just("create"), users, plans),
    st.tuples(st.just("complete"), users, plans),
    st.tuples(st.just("complete_any"), users, st.integers(0, 5)),
    st.tuples(st.just("overdue"), users, plans),
    st.tuples(st.just("expire"), st.integers(1, 3)),
    st.tuples(st.just("cancel"), users, plans),
    st.tuples(
        st.just("force"),
        users,
        st.integers(0, 5),
        st.sampled_from(["pending", "completed", "expired", "canceled", "failed"]),
    ),
)


@pytest.fixture(scope="module")
def shared_conn(make_database, template_db):
    conn = psycopg.connect(make_database(template_db), autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


def sessions(conn, user_ids) -> dict:
    return {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT id, user_id, subscription_plan, status FROM payment_checkout_sessions WHERE user_id = ANY(%s)",
            (user_ids,),
        )
    }


def pick(conn, user_ids, user, index):
    rows = conn.execute(
        "SELECT id FROM payment_checkout_sessions WHERE user_id = %s ORDER BY created_at, id",
        (user_ids[user],),
    ).fetchall()
    return rows[index % len(rows)][0] if rows else None


def apply_op(conn, user_ids, op, paid: set) -> None:
    kind = op[0]
    if kind == "create":
        conn.execute(
            "SELECT get_or_create_checkout_session(%s, 'p@example.com', %s, %s, 'stripe')",
            (user_ids[op[1]], op[2], PLANS[op[2]]),
        )
    elif kind in ("complete", "complete_any"):
        if kind == "complete":
            row = conn.execute(
                "SELECT id FROM payment_checkout_sessions WHERE user_id = %s AND "
                "subscription_plan = %s ORDER BY created_at DESC LIMIT 1",
                (user_ids[op[1]], op[2]),
            ).fetchone()
            sid = row[0] if row else None
        else:
            sid = pick(conn, user_ids, op[1], op[2])
        if sid is not None:
            conn.execute("SELECT complete_checkout_session(%s, %s, 'cus_prop')", (sid, f"cs_{sid.hex}"))
            paid.add(sid)
    elif kind == "overdue":
        conn.execute(
            "UPDATE payment_checkout_sessions SET created_at = now() - interval '2 days', "
            "expires_at = now() - interval '1 day' WHERE user_id = %s AND subscription_plan = %s "
            "AND status = 'pending'",
            (user_ids[op[1]], op[2]),
        )
    elif kind == "expire":
        conn.execute("SELECT expire_old_checkout_sessions(%s)", (op[1],))
    elif kind == "cancel":
        conn.execute(
            "UPDATE payment_checkout_sessions SET status = 'canceled' WHERE user_id = %s AND "
            "subscription_plan = %s AND status = 'pending'",
            (user_ids[op[1]], op[2]),
        )
    elif kind == "force":  # anything a careless writer might try; illegal moves must be refused
        sid = pick(conn, user_ids, op[1], op[2])
        if sid is None:
            return
        try:
            with conn.transaction():
                conn.execute(
                    "UPDATE payment_checkout_sessions SET status = %s, completed_at = CASE WHEN %s = "
                    "'completed' THEN coalesce(completed_at, now()) END WHERE id = %s",
                    (op[3], op[3], sid),
                )
        except (
            psycopg.errors.ObjectNotInPrerequisiteState,
            psycopg.errors.UniqueViolation,
            psycopg.errors.CheckViolation,
        ):
            pass  # refused: the invariants below check nothing changed wrongly


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=25))
def test_random_interleavings_keep_invariants(shared_conn, ops):
    conn = shared_conn
    user_ids = [
        conn.execute(
            "INSERT INTO users (email) VALUES (%s) RETURNING id", (f"p{uuid.uuid4().hex[:8]}@example.com",)
        ).fetchone()[0]
        for _ in range(3)
    ]
    paid: set = set()
    before = sessions(conn, user_ids)
    for op in ops:
        apply_op(conn, user_ids, op, paid)
        after = sessions(conn, user_ids)
        # No backward transitions, whoever wrote the row.
        for sid, (_, _, old) in before.items():
            new = after[sid][2]
            assert old == new or (old, new) in ALLOWED, (op, old, new)
        # At most one pending session per (user, plan).
        pending = [(u, p) for (u, p, s) in after.values() if s == "pending"]
        assert len(pending) == len(set(pending)), op
        # Nothing paid is lost: a session Stripe confirmed stays completed.
        assert all(after[sid][2] == "completed" for sid in paid), op
        # A completed session implies an active subscription.
        completed_users = {u for (u, _, s) in after.values() if s == "completed"}
        if completed_users:
            inactive = conn.execute(
                "SELECT count(*) FROM users WHERE id = ANY(%s) AND subscription_status <> 'active'",
                (list(completed_users),),
            ).fetchone()[0]
            assert inactive == 0, op
        before = after
