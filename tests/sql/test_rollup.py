"""checkout_session_rollup plus its unfolded deltas (checkout_session_rollup_current) stays equal to the raw
table through inserts, updates, deletes, truncation, folds (also concurrent with writers and with each other)
and a rebuild; writers never wait for each other on rollup rows; checkout_session_stats_since equals the raw
query for any window start."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import errors

from runner.jobs import tasks as jobs
from tests.reporting_seed import seed

BANDS = ", ".join(
    f"count(*) FILTER (WHERE status = 'completed' AND checkout_completion_band(created_at, completed_at) = {band})"
    for band in range(1, 8)
)
RAW = f"""
SELECT checkout_rollup_bucket(created_at), subscription_plan, status, count(*),
       count(*) FILTER (WHERE attempts > 1), sum(attempts),
       coalesce(sum(extract(epoch FROM completed_at - created_at)) FILTER (WHERE status = 'completed'), 0),
       ARRAY[{BANDS}]
  FROM payment_checkout_sessions GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
COLUMNS = """bucket, subscription_plan, status, sessions, retried, attempts, complete_seconds,
       ARRAY[completed_1m, completed_5m, completed_15m, completed_1h, completed_6h, completed_24h, completed_more]"""
# What the reports read: the rollup with the deltas not folded yet.
ROLLUP = f"SELECT {COLUMNS} FROM checkout_session_rollup_current ORDER BY 1, 2, 3"
# The rollup table alone: equal to the raw table once every delta is folded.
FOLDED = f"SELECT {COLUMNS} FROM checkout_session_rollup WHERE sessions <> 0 ORDER BY 1, 2, 3"


def rollup_equals_raw(conn: psycopg.Connection) -> bool:
    return conn.execute(ROLLUP).fetchall() == conn.execute(RAW).fetchall()


def deltas(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM checkout_session_rollup_delta").fetchone()[0]


def test_rollup_follows_every_kind_of_write(conn):
    seed(conn)
    assert rollup_equals_raw(conn)
    assert conn.execute("SELECT count(*) FROM checkout_session_rollup_current").fetchone()[0] > 100
    # status moves (the expire job, completions), attempts, a change the rollup does not count
    conn.execute(
        "UPDATE payment_checkout_sessions SET status = 'expired' WHERE status = 'pending' AND attempts = 2"
    )
    conn.execute(
        "UPDATE payment_checkout_sessions SET status = 'completed', completed_at = created_at + "
        "INTERVAL '3 minutes' WHERE status = 'failed'"
    )
    conn.execute(
        "UPDATE payment_checkout_sessions SET attempts = attempts + 1 WHERE subscription_plan = 'pro'"
    )
    conn.execute("UPDATE payment_checkout_sessions SET checkout_url = 'https://x' WHERE status = 'canceled'")
    assert rollup_equals_raw(conn)
    conn.execute("DELETE FROM payment_checkout_sessions WHERE subscription_plan = 'basic'")
    assert rollup_equals_raw(conn)
    with conn.transaction(force_rollback=True):
        conn.execute("DELETE FROM payment_checkout_sessions")
        assert conn.execute("SELECT count(*) FROM checkout_session_rollup_current").fetchone()[0] == 0
    assert rollup_equals_raw(conn)
    assert conn.execute("SELECT fold_checkout_session_rollup()").fetchone()[0] > 0
    conn.execute("UPDATE payment_checkout_sessions SET status = 'expired' WHERE status = 'pending'")
    assert deltas(conn) > 0
    conn.execute("TRUNCATE payment_checkout_sessions")
    assert conn.execute("SELECT count(*) FROM checkout_session_rollup").fetchone()[0] == 0
    assert deltas(conn) == 0


def test_rebuild_gives_the_same_rollup_and_clears_the_deltas(conn):
    seed(conn)
    before = conn.execute(ROLLUP).fetchall()
    conn.execute("SELECT fold_checkout_session_rollup()")
    conn.execute("UPDATE checkout_session_rollup SET sessions = sessions + 5")  # corrupt it
    conn.execute("UPDATE payment_checkout_sessions SET status = 'expired' WHERE status = 'pending'")
    conn.execute(
        "INSERT INTO checkout_session_rollup_delta SELECT * FROM checkout_session_rollup_delta"
    )  # and them
    assert deltas(conn) > 0
    assert not rollup_equals_raw(conn)
    expected = conn.execute(RAW).fetchall()
    assert conn.execute("SELECT rebuild_checkout_session_rollup()").fetchone()[0] == len(before)
    assert deltas(conn) == 0
    assert conn.execute(FOLDED).fetchall() == conn.execute(ROLLUP).fetchall() == expected


def test_reconcile_levels_a_stale_rollup_while_writers_carry_on(conn, db_url, make_user):
    """reconcile_checkout_session_rollup() (what applying the rollup file runs) corrects whatever the rollup
    holds in one statement that takes no lock a writer waits for: a writer with a 100 ms lock timeout
    inserts and completes sessions while it is uncommitted, and the result counts them exactly once."""
    seed(conn)
    conn.execute("SELECT fold_checkout_session_rollup()")
    conn.execute("UPDATE checkout_session_rollup SET sessions = sessions + 5 WHERE status = 'expired'")
    conn.execute("DELETE FROM checkout_session_rollup WHERE status = 'completed'")
    conn.execute("UPDATE payment_checkout_sessions SET status = 'expired' WHERE status = 'pending'")
    assert not rollup_equals_raw(conn)
    with psycopg.connect(db_url) as r, psycopg.connect(db_url, autocommit=True) as w:
        corrected = r.execute("SELECT reconcile_checkout_session_rollup()").fetchone()[0]
        assert corrected > 0
        w.execute("SET lock_timeout = '100ms'")
        for _ in range(3):  # while the reconcile is still open
            session = w.execute(
                "SELECT get_or_create_checkout_session(%s, 'r@example.com', 'pro', 29.99, 'stripe')",
                (make_user(),),
            ).fetchone()[0]
            w.execute("SELECT complete_checkout_session(%s, %s, 'cus_r')", (session, f"cs_r_{session}"))
        r.commit()
    assert rollup_equals_raw(conn)
    assert conn.execute("SELECT reconcile_checkout_session_rollup()").fetchone()[0] == 0
    conn.execute("SELECT fold_checkout_session_rollup()")
    assert conn.execute(FOLDED).fetchall() == conn.execute(RAW).fetchall()


def test_applying_the_rollup_file_counts_every_write_made_meanwhile(conn, db_url, make_user, project):
    """The rollup file run again (as an edit of it would be) over an emptied rollup, with writers running
    all along: the triggers are swapped and the rollup refilled, and no write is lost or counted twice."""
    from runner import migrate

    seed(conn)
    conn.execute("TRUNCATE checkout_session_rollup, checkout_session_rollup_delta")
    rollup_file = next(f for f in project.files() if f.name == "functions/checkout_session_rollup.sql")
    assert not rollup_file.transactional
    users = [make_user() for _ in range(30)]
    failures: list[BaseException] = []

    def writer(mine: list) -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as c:
                for user in mine:
                    session = c.execute(
                        "SELECT get_or_create_checkout_session(%s, 'a@example.com', 'pro', 29.99, 'stripe')",
                        (user,),
                    ).fetchone()[0]
                    c.execute("SELECT complete_checkout_session(%s, %s, 'cus_a')", (session, f"cs_a_{user}"))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    writers = [threading.Thread(target=writer, args=(users[k::3],)) for k in range(3)]
    for t in writers:
        t.start()
    with psycopg.connect(db_url, autocommit=True) as c:
        for _ in range(2):  # twice: the second run finds nothing to correct
            migrate._run_file(c, project, rollup_file)
    for t in writers:
        t.join(60)
    assert failures == []
    assert rollup_equals_raw(conn)
    assert conn.execute("SELECT reconcile_checkout_session_rollup()").fetchone()[0] == 0


def test_fold_moves_the_deltas_into_the_rollup_and_keeps_it_equal(conn):
    seed(conn)
    waiting = deltas(conn)
    assert waiting > 0 and rollup_equals_raw(conn)
    assert conn.execute(FOLDED).fetchall() != conn.execute(RAW).fetchall()  # the table alone lags
    assert conn.execute("SELECT fold_checkout_session_rollup(7)").fetchone()[0] == 7  # a partial fold
    assert deltas(conn) == waiting - 7 and rollup_equals_raw(conn)
    assert jobs.fold_rollup_deltas(conn, batch_size=50) == waiting - 7
    assert deltas(conn) == 0 and rollup_equals_raw(conn)
    assert conn.execute(FOLDED).fetchall() == conn.execute(RAW).fetchall()
    assert conn.execute("SELECT fold_checkout_session_rollup()").fetchone()[0] == 0
    for bad in (0, -1, None):
        with pytest.raises(errors.InvalidParameterValue):
            conn.execute("SELECT fold_checkout_session_rollup(%s)", (bad,))


def test_the_rollup_job_folds_and_the_expire_job_folds_after_its_batches(conn, db_url):
    seed(conn)
    waiting = deltas(conn)
    result = jobs.run(lambda: psycopg.connect(db_url, autocommit=True), "rollup", batch_size=100)
    assert (result.outcome, result.rows, deltas(conn)) == ("succeeded", waiting, 0)
    conn.execute(
        "UPDATE payment_checkout_sessions SET expires_at = now() - INTERVAL '1 minute' "
        "WHERE status = 'pending'"
    )
    assert deltas(conn) == 0  # expires_at is not counted: nothing appended
    result = jobs.run(lambda: psycopg.connect(db_url, autocommit=True), "expire")
    assert result.rows > 0 and result.details["rollup_deltas_folded"] > 0
    assert deltas(conn) == 0 and rollup_equals_raw(conn)


def _two_pending_sessions_of_one_hour(conn, make_user) -> list:
    ids = [
        conn.execute(
            "SELECT get_or_create_checkout_session(%s, 'h@example.com', 'pro', 29.99, 'stripe')",
            (make_user(),),
        ).fetchone()[0]
        for _ in range(2)
    ]
    conn.execute(
        "UPDATE payment_checkout_sessions SET created_at = checkout_rollup_bucket(now()) WHERE id = ANY(%s)",
        (ids,),
    )
    conn.execute("SELECT fold_checkout_session_rollup()")
    return ids


def test_writers_of_one_rollup_hour_never_wait_for_each_other(conn, db_url, make_user):
    """Two open transactions each complete a session of the same hour and plan: with a lock timeout of
    100 ms, the second must not wait for the first's (uncommitted) rollup change."""
    first, second = _two_pending_sessions_of_one_hour(conn, make_user)
    with psycopg.connect(db_url) as a, psycopg.connect(db_url) as b:
        for c in (a, b):
            c.execute("SET lock_timeout = '100ms'")
        a.execute("SELECT complete_checkout_session(%s, 'cs_hour_a', 'cus_a')", (first,))
        b.execute("SELECT complete_checkout_session(%s, 'cs_hour_b', 'cus_b')", (second,))  # a still open
        # and a fold meanwhile neither waits for them nor makes them wait
        conn.execute("SET lock_timeout = '100ms'")
        conn.execute("SELECT fold_checkout_session_rollup()")
        a.execute(
            "SELECT get_or_create_checkout_session(%s, 'h@example.com', 'basic', 9.99, 'stripe')",
            (
                conn.execute(
                    "SELECT user_id FROM payment_checkout_sessions WHERE id = %s", (first,)
                ).fetchone()[0],
            ),
        )
        b.commit()
        a.commit()
    assert rollup_equals_raw(conn)
    assert conn.execute(
        "SELECT sessions FROM checkout_session_rollup_current WHERE status = 'completed'"
    ).fetchall() == [(2,)]


def test_concurrent_writers_and_folds_keep_the_rollup_equal(conn, db_url, make_user):
    users = [make_user() for _ in range(40)]
    failures: list[BaseException] = []
    stop = threading.Event()

    def writer(mine: list) -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as c:
                for i, user in enumerate(mine):
                    session = c.execute(
                        "SELECT get_or_create_checkout_session(%s, 'w@example.com', 'pro', 29.99, 'stripe')",
                        (user,),
                    ).fetchone()[0]
                    if i % 3 != 2:
                        c.execute(
                            "SELECT complete_checkout_session(%s, %s, 'cus_w')", (session, f"cs_w_{user}")
                        )
                    else:
                        c.execute(
                            "UPDATE payment_checkout_sessions SET status = 'canceled' WHERE id = %s",
                            (session,),
                        )
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    def folder() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as c:
                while not stop.is_set():
                    c.execute("SELECT fold_checkout_session_rollup(3)")
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    writers = [threading.Thread(target=writer, args=(users[k::4],)) for k in range(4)]
    folders = [threading.Thread(target=folder) for _ in range(2)]
    for t in writers + folders:
        t.start()
    for t in writers:
        t.join(60)
    stop.set()
    for t in folders:
        t.join(60)
    assert failures == []
    assert rollup_equals_raw(conn)
    conn.execute("SELECT fold_checkout_session_rollup()")
    assert deltas(conn) == 0
    assert conn.execute(FOLDED).fetchall() == conn.execute(RAW).fetchall()
    assert conn.execute("SELECT sum(sessions) FROM checkout_session_rollup_current").fetchone()[0] == 40


def test_rollup_follows_the_reference_functions(conn, make_user):
    user = make_user()
    session = conn.execute(
        "SELECT get_or_create_checkout_session(%s, 'r@example.com', 'pro', 29.99, 'stripe')", (user,)
    ).fetchone()[0]
    conn.execute(
        "SELECT get_or_create_checkout_session(%s, 'r@example.com', 'pro', 29.99, 'stripe')", (user,)
    )
    conn.execute("SELECT complete_checkout_session(%s, 'cs_rollup', 'cus_rollup')", (session,))
    assert rollup_equals_raw(conn)
    assert conn.execute(
        "SELECT status, sessions, retried FROM checkout_session_rollup_current"
    ).fetchall() == [("completed", 1, 1)]


@pytest.mark.parametrize(
    "since",
    [
        "now() - INTERVAL '7 days'",
        "now() - INTERVAL '30 days'",
        "CURRENT_DATE",
        "checkout_rollup_bucket(now() - INTERVAL '7 days')",
        "checkout_rollup_bucket(now()) - INTERVAL '1 microsecond'",
        "NULL",
    ],
)
def test_stats_since_equals_raw_window(conn, since):
    seed(conn)
    raw = conn.execute(
        f"""SELECT subscription_plan, status, count(*), sum(attempts) FROM payment_checkout_sessions
             WHERE {since} IS NULL OR created_at > {since} GROUP BY 1, 2 ORDER BY 1, 2"""
    ).fetchall()
    ours = conn.execute(
        f"""SELECT subscription_plan, status, sum(sessions)::bigint, sum(attempts)::bigint
              FROM checkout_session_stats_since({since}) GROUP BY 1, 2 ORDER BY 1, 2"""
    ).fetchall()
    assert ours == raw and raw


TOTALS = (
    "SELECT subscription_plan, status, sessions, retried, attempts, round(complete_seconds, 3) "
    "FROM checkout_session_totals() ORDER BY 1, 2"
)
RAW_TOTALS = (
    "SELECT subscription_plan, status, count(*), count(*) FILTER (WHERE attempts > 1), sum(attempts), "
    "round(coalesce(sum(extract(epoch FROM completed_at - created_at)) FILTER (WHERE status = "
    "'completed'), 0), 3) FROM payment_checkout_sessions GROUP BY 1, 2 ORDER BY 1, 2"
)


def test_all_time_totals_equal_the_table_with_and_without_unfolded_deltas(conn):
    seed(conn)
    assert deltas(conn) > 0
    assert conn.execute(TOTALS).fetchall() == conn.execute(RAW_TOTALS).fetchall()
    conn.execute(
        "UPDATE payment_checkout_sessions SET status = 'expired' WHERE status = 'pending' "
        "AND id IN (SELECT id FROM payment_checkout_sessions WHERE status = 'pending' LIMIT 3)"
    )
    conn.execute("SELECT fold_checkout_session_rollup(5)")
    assert conn.execute(TOTALS).fetchall() == conn.execute(RAW_TOTALS).fetchall()
    conn.execute("SELECT fold_checkout_session_rollup()")
    assert deltas(conn) == 0
    assert conn.execute(TOTALS).fetchall() == conn.execute(RAW_TOTALS).fetchall()


@pytest.mark.parametrize("since", ["NULL", "now() - INTERVAL '7 days'", "CURRENT_DATE"])
def test_counts_per_plan_and_status_equal_the_table(conn, since):
    seed(conn)
    raw = conn.execute(
        f"""SELECT subscription_plan, status, count(*) FROM payment_checkout_sessions
             WHERE {since} IS NULL OR created_at > {since} GROUP BY 1, 2 ORDER BY 1, 2"""
    ).fetchall()
    assert (
        raw
        and conn.execute(f"SELECT * FROM checkout_session_counts({since}) ORDER BY 1, 2").fetchall() == raw
    )
    # Inlined into the caller's query: the branch that does not apply is never run.
    plan = "\n".join(
        r[0]
        for r in conn.execute(
            f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT * FROM checkout_session_counts({since})"
        )
    )
    assert "Function Scan" not in plan, plan
    assert ("One-Time Filter: false" if since == "NULL" else "(never executed)") in plan, plan
