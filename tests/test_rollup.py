"""checkout_session_rollup stays equal to the raw table through inserts, updates, deletes, truncation and
a rebuild; checkout_session_stats_since equals the raw query for any window start."""

from __future__ import annotations

import psycopg
import pytest

from tests.reporting_seed import seed

BANDS = ", ".join(
    f"count(*) FILTER (WHERE status = 'completed' AND checkout_completion_band(created_at, completed_at) = {band})"
    for band in range(1, 8))
RAW = f"""
SELECT checkout_rollup_bucket(created_at), subscription_plan, status, count(*),
       count(*) FILTER (WHERE attempts > 1), sum(attempts),
       coalesce(sum(extract(epoch FROM completed_at - created_at)) FILTER (WHERE status = 'completed'), 0),
       ARRAY[{BANDS}]
  FROM payment_checkout_sessions GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
ROLLUP = """
SELECT bucket, subscription_plan, status, sessions, retried, attempts, complete_seconds,
       ARRAY[completed_1m, completed_5m, completed_15m, completed_1h, completed_6h, completed_24h, completed_more]
  FROM checkout_session_rollup WHERE sessions <> 0 ORDER BY 1, 2, 3
"""


def rollup_equals_raw(conn: psycopg.Connection) -> bool:
    return conn.execute(ROLLUP).fetchall() == conn.execute(RAW).fetchall()


def test_rollup_follows_every_kind_of_write(conn):
    seed(conn)
    assert rollup_equals_raw(conn)
    assert conn.execute("SELECT count(*) FROM checkout_session_rollup").fetchone()[0] > 100
    # status moves (the expire job, completions), attempts, a change the rollup does not count
    conn.execute("UPDATE payment_checkout_sessions SET status = 'expired' WHERE status = 'pending' AND attempts = 2")
    conn.execute("UPDATE payment_checkout_sessions SET status = 'completed', completed_at = created_at + "
                 "INTERVAL '3 minutes' WHERE status = 'failed'")
    conn.execute("UPDATE payment_checkout_sessions SET attempts = attempts + 1 WHERE subscription_plan = 'pro'")
    conn.execute("UPDATE payment_checkout_sessions SET checkout_url = 'https://x' WHERE status = 'canceled'")
    assert rollup_equals_raw(conn)
    conn.execute("DELETE FROM payment_checkout_sessions WHERE subscription_plan = 'basic'")
    assert rollup_equals_raw(conn)
    with conn.transaction(force_rollback=True):
        conn.execute("DELETE FROM payment_checkout_sessions")
        assert conn.execute("SELECT count(*) FROM checkout_session_rollup WHERE sessions <> 0").fetchone()[0] == 0
    assert rollup_equals_raw(conn)
    conn.execute("TRUNCATE payment_checkout_sessions")
    assert conn.execute("SELECT count(*) FROM checkout_session_rollup").fetchone()[0] == 0


def test_rebuild_gives_the_same_rollup(conn):
    seed(conn)
    before = conn.execute(ROLLUP).fetchall()
    conn.execute("UPDATE checkout_session_rollup SET sessions = sessions + 5")  # corrupt it
    assert not rollup_equals_raw(conn)
    assert conn.execute("SELECT rebuild_checkout_session_rollup()").fetchone()[0] == len(before)
    assert conn.execute(ROLLUP).fetchall() == before


def test_rollup_follows_the_reference_functions(conn, make_user):
    user = make_user()
    session = conn.execute("SELECT get_or_create_checkout_session(%s, 'r@example.com', 'pro', 29.99, 'stripe')",
                           (user,)).fetchone()[0]
    conn.execute("SELECT get_or_create_checkout_session(%s, 'r@example.com', 'pro', 29.99, 'stripe')", (user,))
    conn.execute("SELECT complete_checkout_session(%s, 'cs_rollup', 'cus_rollup')", (session,))
    assert rollup_equals_raw(conn)
    assert conn.execute("SELECT status, sessions, retried FROM checkout_session_rollup WHERE sessions <> 0"
                        ).fetchall() == [("completed", 1, 1)]


@pytest.mark.parametrize("since", ["now() - INTERVAL '7 days'", "now() - INTERVAL '30 days'", "CURRENT_DATE",
                                   "checkout_rollup_bucket(now() - INTERVAL '7 days')",
                                   "checkout_rollup_bucket(now()) - INTERVAL '1 microsecond'", "NULL"])
def test_stats_since_equals_raw_window(conn, since):
    seed(conn)
    raw = conn.execute(
        f"""SELECT subscription_plan, status, count(*), sum(attempts) FROM payment_checkout_sessions
             WHERE {since} IS NULL OR created_at > {since} GROUP BY 1, 2 ORDER BY 1, 2""").fetchall()
    ours = conn.execute(
        f"""SELECT subscription_plan, status, sum(sessions)::bigint, sum(attempts)::bigint
              FROM checkout_session_stats_since({since}) GROUP BY 1, 2 ORDER BY 1, 2""").fetchall()
    assert ours == raw and raw
