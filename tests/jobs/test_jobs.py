"""The scheduled jobs against a real database: expire, remind (queueing), cleanup; locks and job_runs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import psycopg
import pytest

from runner.errors import JobFailed, JobOptionError
from runner.jobs import tasks as jobs
from runner.locks import LOCK_CLASS

SESSION_COLUMNS = "user_id, email, subscription_plan, plan_price, payment_provider"


def add_sessions(
    conn: psycopg.Connection,
    n: int,
    *,
    created: str = "now() - interval '2 days'",
    expires: str | None = None,
    status: str = "pending",
    completed: str | None = None,
    attempts: int = 1,
    plan: str = "pro",
    checkout_url: str | None = None,
) -> list[uuid.UUID]:
    """n sessions, one new user each (one pending session per user and plan), with SQL time expressions."""
    rows = conn.execute(
        f"""WITH u AS (
              INSERT INTO users (email) SELECT 'u' || g || '-' || gen_random_uuid() || '@example.com'
                FROM generate_series(1, %(n)s) g RETURNING id, email)
            INSERT INTO payment_checkout_sessions ({SESSION_COLUMNS}, created_at, expires_at, status,
                                                   completed_at, attempts, checkout_url)
            SELECT u.id, u.email, %(plan)s, 29.99, 'stripe', {created}, {expires or "NULL"}, %(status)s,
                   {completed or "NULL"}, %(attempts)s, %(url)s
              FROM u RETURNING id""",
        {"n": n, "plan": plan, "status": status, "attempts": attempts, "url": checkout_url},
    ).fetchall()
    return [r[0] for r in rows]


def statuses(conn: psycopg.Connection) -> dict[str, int]:
    return dict(
        conn.execute("SELECT status, count(*) FROM payment_checkout_sessions GROUP BY status").fetchall()
    )


def connector(url: str) -> Callable[[], psycopg.Connection]:
    return lambda: psycopg.connect(url, autocommit=True)


def runs(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT job, outcome, rows, batches, error FROM job_runs ORDER BY id").fetchall()


# -- expire ------------------------------------------------------------------------------------------------
def test_expire_works_through_a_backlog_in_batches_and_records_the_run(conn, db_url):
    add_sessions(conn, 25, expires="now() - interval '1 hour'")
    add_sessions(conn, 4, created="now()", plan="basic")  # not due
    seen = []
    result = jobs.run(connector(db_url), "expire", batch_size=10, on_batch=lambda t: seen.append(t.rows))

    assert (result.outcome, result.rows, result.batches) == ("succeeded", 25, 3)
    assert seen == [10, 20, 25]
    assert statuses(conn) == {"expired": 25, "pending": 4}
    assert runs(conn) == [("expire", "succeeded", 25, 3, None)]
    details = conn.execute("SELECT details FROM job_runs").fetchone()[0]
    assert details["batch_size"] == 10 and details["longest_batch_seconds"] >= 0


def test_expire_with_nothing_due_is_one_empty_batch(conn, db_url):
    add_sessions(conn, 3, created="now()")
    result = jobs.run(connector(db_url), "expire")
    assert (result.rows, result.batches) == (0, 1)
    assert statuses(conn) == {"pending": 3}


def test_expire_boundary_is_expires_at_not_after_now(conn):
    # One transaction: now() is the same instant for the rows and for the function.
    with conn.transaction():
        due = add_sessions(conn, 1, created="now() - interval '1 day'", expires="now()")
        later = add_sessions(
            conn, 1, created="now() - interval '1 day'", expires="now() + interval '1 microsecond'"
        )
        assert conn.execute("SELECT expire_old_checkout_sessions(100)").fetchone()[0] == 1
    got = dict(conn.execute("SELECT id, status FROM payment_checkout_sessions").fetchall())
    assert got == {due[0]: "expired", later[0]: "pending"}


def test_dry_run_counts_change_nothing(conn):
    add_sessions(conn, 7, expires="now() - interval '1 minute'")
    assert jobs.count_overdue(conn) == 7
    assert statuses(conn) == {"pending": 7}
    assert runs(conn) == []


@pytest.mark.parametrize("bad", [0, -5, "10", True])
def test_bad_batch_size_is_refused_before_anything_changes(conn, db_url, bad):
    add_sessions(conn, 2, expires="now() - interval '1 minute'")
    with pytest.raises(JobFailed, match="batch size must be a positive whole number"):
        jobs.run(connector(db_url), "expire", batch_size=bad)
    assert statuses(conn) == {"pending": 2}
    assert conn.execute("SELECT outcome FROM job_runs").fetchall() == [("failed",)]


def test_a_failing_batch_keeps_earlier_batches_and_records_the_failure(conn, db_url):
    add_sessions(conn, 5, expires="now() - interval '1 hour'")
    # A DBA's broken trigger makes the second batch fail.
    conn.execute("""CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN IF (SELECT count(*) FROM payment_checkout_sessions WHERE status = 'expired') >= 2
                          THEN RAISE EXCEPTION 'boom' USING ERRCODE = 'XX001'; END IF; RETURN NEW; END $$""")
    conn.execute(
        "CREATE TRIGGER boom BEFORE UPDATE ON payment_checkout_sessions FOR EACH ROW EXECUTE FUNCTION boom()"
    )
    with pytest.raises(JobFailed) as caught:
        jobs.run(connector(db_url), "expire", batch_size=2)
    assert str(caught.value).startswith(
        "job expire failed after 1 batch(es), 2 row(s) done: [SQLSTATE XX001] boom"
    )
    assert statuses(conn) == {"expired": 2, "pending": 3}
    job, outcome, rows, batches, error = runs(conn)[0]
    assert (job, outcome, rows, batches) == ("expire", "failed", 2, 1)
    assert error.startswith("[SQLSTATE XX001] boom")


# -- locks: overlapping runs -----------------------------------------------------------------------------
def hold_lock(url: str, job: str) -> psycopg.Connection:
    holder = psycopg.connect(url, autocommit=True, application_name="other copy")
    holder.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, jobs.JOBS[job].lock_key))
    return holder


@pytest.mark.parametrize("job", list(jobs.JOBS))
def test_a_run_while_another_holds_the_lock_is_skipped_at_once_and_recorded(conn, db_url, job, project):
    from runner.jobs.mail import MailConfig

    add_sessions(conn, 3, expires="now() - interval '1 hour'")
    options = {
        "expire": {},
        "rollup": {},
        "cleanup": {"retention_days": 90},
        "remind": {"project": project, "mail": None},
        "send-email": {"project": project, "mail": MailConfig("smtp://127.0.0.1:9", "a@example.com")},
    }
    holder = hold_lock(db_url, job)
    try:
        result = jobs.run(connector(db_url), job, **options[job])
    finally:
        holder.close()
    assert result.outcome == "skipped"
    assert result.error.startswith("another run of this job holds its lock: pid ")
    assert "(other copy, user" in result.error
    assert runs(conn) == [(job, "skipped", 0, 0, result.error)]
    assert statuses(conn) == {"pending": 3}


def overlap(url: str, job: str, **options) -> tuple[jobs.RunResult, jobs.RunResult]:
    """Two copies of `job` at the same time: the first pauses after its first batch until the second ends."""
    second_done = threading.Event()
    results: dict[str, jobs.RunResult] = {}

    def first_pauses(tally):
        if tally.batches == 1:
            assert second_done.wait(30)

    first = threading.Thread(
        target=lambda: results.__setitem__(
            "first", jobs.run(connector(url), job, on_batch=first_pauses, **options)
        )
    )
    first.start()
    try:
        # The second starts once the first holds the lock (its job_runs row exists).
        with psycopg.connect(url, autocommit=True) as watch:
            for _ in range(300):
                if watch.execute("SELECT count(*) FROM job_runs WHERE outcome = 'running'").fetchone()[0]:
                    break
                threading.Event().wait(0.02)
        results["second"] = jobs.run(connector(url), job, **options)
    finally:
        second_done.set()
        first.join(30)
    return results["first"], results["second"]


def test_two_expire_runs_at_once_one_works_one_skips(conn, db_url):
    add_sessions(conn, 30, expires="now() - interval '1 hour'")
    first, second = overlap(db_url, "expire", batch_size=10)
    assert (first.outcome, first.rows) == ("succeeded", 30)
    assert (second.outcome, second.rows) == ("skipped", 0)
    assert statuses(conn) == {"expired": 30}
    assert sorted(r[1] for r in runs(conn)) == ["skipped", "succeeded"]


def test_two_cleanup_runs_at_once_one_works_one_skips(conn, db_url):
    add_sessions(
        conn,
        12,
        status="completed",
        created="now() - interval '200 days'",
        completed="now() - interval '199 days'",
    )
    first, second = overlap(db_url, "cleanup", batch_size=5, retention_days=90)
    assert (first.outcome, first.rows, first.batches) == ("succeeded", 12, 3)
    assert second.outcome == "skipped"
    assert conn.execute("SELECT count(*) FROM payment_checkout_sessions_archive").fetchone()[0] == 12


def test_two_remind_runs_at_once_queue_each_reminder_once(conn, db_url, project):
    add_sessions(conn, 4, created="now() - interval '8 hours'")
    first, second = overlap(db_url, "remind", project=project, mail=None)
    assert (first.outcome, first.details["queued"]) == ("succeeded", 4)
    assert second.outcome == "skipped"
    assert conn.execute("SELECT count(*), count(DISTINCT dedupe_key) FROM email_outbox").fetchone() == (4, 4)


def test_a_run_that_died_is_marked_abandoned_by_the_next(conn, db_url):
    conn.execute("INSERT INTO job_runs (job) VALUES ('expire')")  # a run killed before it finished
    jobs.run(connector(db_url), "expire")
    got = conn.execute("SELECT outcome, error FROM job_runs ORDER BY id").fetchall()
    abandoned = "abandoned: the run ended without recording an outcome (killed or lost its connection)"
    assert got[0] == ("failed", abandoned)
    assert got[1] == ("succeeded", None)


# -- remind: queueing ------------------------------------------------------------------------------------
def test_reminder_candidates_follow_the_reference_boundaries(conn):
    """The reference: created_at < now() - 6 h AND created_at > now() - 24 h AND attempts < 3 (strict)."""
    cases = {
        "exactly 6 h": ("now() - interval '6 hours'", 1, False),
        "6 h + 1 us": ("now() - interval '6 hours 1 microsecond'", 1, True),
        "exactly 24 h": ("now() - interval '24 hours'", 1, False),
        "24 h - 1 us": ("now() - interval '23:59:59.999999'", 1, True),
        "5 h": ("now() - interval '5 hours'", 1, False),
        "2 attempts": ("now() - interval '12 hours'", 2, True),
        "3 attempts": ("now() - interval '12 hours'", 3, False),
    }
    with conn.transaction():  # one now() for rows and query
        ids = {
            name: add_sessions(
                conn, 1, created=created, attempts=attempts, expires="now() + interval '1 day'"
            )[0]
            for name, (created, attempts, _) in cases.items()
        }
        reference = {
            r[0]
            for r in conn.execute(
                "SELECT id FROM payment_checkout_sessions WHERE status = 'pending' "
                "AND created_at < NOW() - INTERVAL '6 hours' AND created_at > NOW() - INTERVAL '24 hours' "
                "AND attempts < 3"
            ).fetchall()
        }
        candidates = {r[0] for r in conn.execute("SELECT session_id FROM checkout_reminder_candidates()")}
        queued = conn.execute("SELECT queue_checkout_reminders()").fetchone()[0]
    expected = {ids[name] for name, (_, _, due) in cases.items() if due}
    assert candidates == reference == expected
    assert queued == 3
    got = conn.execute("SELECT checkout_session_id, kind, dedupe_key FROM email_outbox").fetchall()
    assert sorted(got) == sorted((i, "reminder", f"reminder:{i}") for i in expected)


def test_a_session_is_never_reminded_twice(conn):
    add_sessions(
        conn, 2, created="now() - interval '7 hours'", checkout_url="https://checkout.stripe.com/c/x"
    )
    assert conn.execute("SELECT queue_checkout_reminders()").fetchone()[0] == 2
    assert conn.execute("SELECT queue_checkout_reminders()").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM checkout_reminder_candidates()").fetchone()[0] == 0
    # Even once the first reminder was sent (or gave up), the session is not queued again.
    conn.execute("UPDATE email_outbox SET status = 'failed'")
    assert conn.execute("SELECT queue_checkout_reminders()").fetchone()[0] == 0
    context = conn.execute("SELECT context FROM email_outbox LIMIT 1").fetchone()[0]
    assert context["checkout_url"] == "https://checkout.stripe.com/c/x"
    assert context["subscription_plan"] == "pro" and context["plan_price"] == "29.99"


def test_concurrent_queueing_outside_the_job_lock_still_queues_once(conn, db_url):
    """The database rule, not the lock: two transactions queue at once; the second waits, then skips."""
    add_sessions(conn, 3, created="now() - interval '10 hours'")
    a = psycopg.connect(db_url)
    b = psycopg.connect(db_url)
    try:
        assert a.execute("SELECT queue_checkout_reminders()").fetchone()[0] == 3
        got = {}
        t = threading.Thread(
            target=lambda: got.setdefault("b", b.execute("SELECT queue_checkout_reminders()").fetchone()[0])
        )
        t.start()
        t.join(0.5)
        assert t.is_alive()  # b waits on a's uncommitted reminders
        a.commit()
        t.join(30)
        b.commit()
    finally:
        a.close()
        b.close()
    assert got["b"] == 0
    assert conn.execute("SELECT count(*) FROM email_outbox").fetchone()[0] == 3


# -- cleanup -----------------------------------------------------------------------------------------------
def test_cleanup_moves_every_old_completed_row_to_the_archive_intact(conn, db_url):
    old = add_sessions(
        conn,
        23,
        status="completed",
        created="now() - interval '120 days'",
        completed="now() - interval '100 days'",
        checkout_url="https://x.example/c",
    )
    recent = add_sessions(
        conn,
        4,
        status="completed",
        created="now() - interval '20 days'",
        completed="now() - interval '10 days'",
        plan="basic",
    )
    add_sessions(
        conn,
        3,
        created="now() - interval '200 days'",
        expires="now() - interval '199 days'",
        status="expired",
        plan="enterprise",
    )
    conn.execute(
        "UPDATE payment_checkout_sessions SET metadata = jsonb_build_object('k', id::text), "
        "stripe_session_id = 'cs_' || id WHERE id = ANY(%s)",
        (old,),
    )
    before = conn.execute(
        "SELECT to_jsonb(s) FROM payment_checkout_sessions s WHERE id = ANY(%s) ORDER BY id", (old,)
    ).fetchall()

    result = jobs.run(connector(db_url), "cleanup", batch_size=10, retention_days=90)

    assert (result.rows, result.batches) == (23, 3)
    live = {r[0] for r in conn.execute("SELECT id FROM payment_checkout_sessions")}
    assert not live & set(old) and set(recent) <= live and len(live) == 7
    after = conn.execute(
        "SELECT to_jsonb(a) - 'archived_at' FROM payment_checkout_sessions_archive a ORDER BY id"
    ).fetchall()
    assert after == before  # every column of every row, unchanged
    assert (
        conn.execute(
            "SELECT count(*) FROM payment_checkout_sessions_archive WHERE archived_at IS NULL"
        ).fetchone()[0]
        == 0
    )


def test_cleanup_retention_boundary_is_strict(conn):
    with conn.transaction():
        at = add_sessions(
            conn,
            1,
            status="completed",
            created="now() - interval '91 days'",
            completed="now() - interval '90 days'",
        )
        past = add_sessions(
            conn,
            1,
            status="completed",
            created="now() - interval '91 days'",
            completed="now() - interval '90 days 1 microsecond'",
            plan="basic",
        )
        assert conn.execute("SELECT archive_completed_checkout_sessions(100, 90)").fetchone()[0] == 1
    assert [r[0] for r in conn.execute("SELECT id FROM payment_checkout_sessions_archive")] == past
    assert [r[0] for r in conn.execute("SELECT id FROM payment_checkout_sessions")] == at


def test_the_references_plain_delete_still_runs(conn, db_url):
    add_sessions(
        conn,
        5,
        status="completed",
        created="now() - interval '120 days'",
        completed="now() - interval '100 days'",
    )
    jobs.run(connector(db_url), "cleanup", retention_days=90)  # the archive does not get in the way
    add_sessions(
        conn,
        4,
        status="completed",
        created="now() - interval '120 days'",
        completed="now() - interval '100 days'",
    )
    reminded = add_sessions(conn, 2, created="now() - interval '7 hours'", plan="basic")
    conn.execute("SELECT queue_checkout_reminders()")  # nor does mail about the sessions
    conn.execute(
        "UPDATE payment_checkout_sessions SET status = 'completed', "
        "completed_at = now() - interval '95 days' WHERE id = ANY(%s)",
        (reminded,),
    )
    deleted = conn.execute(
        "DELETE FROM payment_checkout_sessions WHERE status = 'completed' AND completed_at < NOW() - INTERVAL '90 days'"
    ).rowcount
    assert deleted == 6
    assert statuses(conn) == {}
    assert conn.execute("SELECT count(*) FROM payment_checkout_sessions_archive").fetchone()[0] == 5
    assert conn.execute("SELECT count(*) FROM email_outbox").fetchone()[0] == 2


def test_archive_refuses_when_it_lacks_a_live_column(conn):
    add_sessions(
        conn,
        2,
        status="completed",
        created="now() - interval '120 days'",
        completed="now() - interval '100 days'",
    )
    conn.execute("ALTER TABLE payment_checkout_sessions ADD COLUMN coupon TEXT")
    with pytest.raises(
        psycopg.errors.ObjectNotInPrerequisiteState,
        match="payment_checkout_sessions_archive lacks column\\(s\\) coupon",
    ):
        conn.execute("SELECT archive_completed_checkout_sessions(10, 90)")
    assert statuses(conn) == {"completed": 2}


def test_archive_has_every_column_of_the_live_table(conn):
    columns = """SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
                  WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"""
    live = set(conn.execute(columns, ("payment_checkout_sessions",)).fetchall())
    archive = set(conn.execute(columns, ("payment_checkout_sessions_archive",)).fetchall())
    assert archive - live == {("archived_at", "timestamp with time zone")}
    assert live <= archive


@pytest.mark.parametrize(
    "args, message",
    [
        ("0, 90", "p_batch_size must be positive, got 0"),
        ("NULL, 90", "p_batch_size must be positive, got NULL"),
        ("10, 0", "p_retention_days must be positive, got 0"),
        ("10, -1", "p_retention_days must be positive, got -1"),
    ],
)
def test_archive_bad_arguments(conn, args, message):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        conn.execute(f"SELECT archive_completed_checkout_sessions({args})")


def test_cleanup_counts_and_options(conn):
    add_sessions(
        conn,
        3,
        status="completed",
        created="now() - interval '40 days'",
        completed="now() - interval '35 days'",
    )
    assert jobs.count_archivable(conn, 90) == 0
    assert jobs.count_archivable(conn, 30) == 3
    with pytest.raises(JobOptionError, match="retention days must be a positive whole number, got 0"):
        jobs.count_archivable(conn, 0)


# -- history ---------------------------------------------------------------------------------------------
def test_history_newest_first_and_filtered(conn, db_url):
    jobs.run(connector(db_url), "expire")
    jobs.run(connector(db_url), "cleanup", retention_days=90)
    jobs.run(connector(db_url), "expire")
    everything = jobs.history(conn)
    assert [r["job"] for r in everything] == ["expire", "cleanup", "expire"]
    assert [r["job"] for r in jobs.history(conn, "cleanup")] == ["cleanup"]
    assert len(jobs.history(conn, limit=1)) == 1
    assert all(r["outcome"] == "succeeded" and r["seconds"] >= 0 for r in everything)
    with pytest.raises(JobOptionError, match="unknown job 'vacuum'"):
        jobs.history(conn, "vacuum")
