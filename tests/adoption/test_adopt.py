"""`runner adopt` on a database built the way the reference's scripts build it (tests/reference_db.py):
the plan, no row lost, every change logged, the team's objects and the reference's calls still working, a
concurrent writer seeing no error, killed and run again, run twice, and a database `runner apply` built."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import psycopg
import pytest
from click.testing import CliRunner

from runner.adoption import execute
from runner.cli import cli
from runner.quality import datatests
from tests import reference_db
from tests.conftest import REPO

SESSIONS = 2000
TABLES = ("payment_checkout_sessions", "users", "webhook_events", "error_logs")


def run_cli(*args: str):
    return CliRunner().invoke(
        cli, ["--project-dir", str(REPO), *args], env={"DATABASE_URL": None}, catch_exceptions=False
    )


@pytest.fixture
def reference_url(make_database) -> str:
    url = make_database()
    reference_db.build(url, SESSIONS)
    return url


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def snapshots(url: str) -> dict[str, dict[str, dict]]:
    with connect(url) as conn:
        return {t: reference_db.snapshot(conn, t) for t in TABLES}


def assert_adopted(
    url: str, project, before: dict[str, dict[str, dict]], app_wrote: frozenset = frozenset()
) -> None:
    """No row lost; a row without a log line is unchanged in every column it had; a logged row's first
    before-image is the row as it was and its last after-image is the row as it is; the database is
    what `runner apply` builds (apply --check 0, verify passes) and every data test passes."""
    after = snapshots(url)
    with connect(url) as conn:
        logs: dict[tuple[str, str], list[tuple]] = {}
        for table, row_id, before_image, after_image in conn.execute(
            "SELECT table_name, row_id, before, after FROM runner_adoption_log ORDER BY id"
        ):
            logs.setdefault((table, row_id), []).append((before_image, after_image))
    for table in TABLES:
        missing = set(before[table]) - set(after[table])
        assert not missing, f"{table}: rows lost: {sorted(missing)[:5]}"
        for row_id, old in before[table].items():
            new = after[table][row_id]
            lines = logs.get((table, row_id))
            if row_id in app_wrote:  # changed by the app meanwhile: only kept, not compared
                continue
            if lines is None:
                changed = {k for k, v in old.items() if new.get(k) != v}
                assert not changed, (
                    f"{table} {row_id}: {changed} changed without a line in runner_adoption_log"
                )
            else:
                # (with the columns adoption added before resolving, at their defaults)
                first = lines[0][0]
                assert {k: first.get(k) for k in old} == old, (
                    f"{table} {row_id}: first before-image is not the row"
                )
                last = lines[-1][1]
                assert {k: new[k] for k in last if k in new} == {k: v for k, v in last.items() if k in new}
        added = set(after[table]) - set(before[table]) - app_wrote
        for row_id in added:  # rows adoption added (users of orphaned sessions) are logged with before = NULL
            assert logs.get((table, row_id), [(None, None)])[0][0] is None and (table, row_id) in logs
    check = run_cli("--database-url", url, "apply", "--check")
    assert check.exit_code == 0, check.output
    verify = run_cli("--database-url", url, "verify")
    assert verify.exit_code == 0, verify.output
    with connect(url) as conn:
        failing = [(r.name, r.failures, r.error) for r in datatests.run(conn, project) if not r.passed]
    assert failing == []


def test_check_prints_the_plan_and_changes_nothing(reference_url):
    before = snapshots(reference_url)
    with connect(reference_url) as conn:
        relations = conn.execute("SELECT count(*) FROM pg_class").fetchone()[0]

    result = run_cli("--database-url", reference_url, "adopt", "--check", "--format", "json")

    assert result.exit_code == 3, result.output
    plan = json.loads(result.stdout)
    assert plan["adopt_versions"] == [
        "tables/V002__users.sql",
        "tables/V003__payment_checkout_sessions.sql",
        "tables/V004__webhook_events.sql",
        "tables/V005__error_logs.sql",
    ]
    assert plan["create_versions"] == ["tables/V001__subscription_plans.sql"]
    counts = {r["name"]: r["rows"] for r in plan["rules"] if r["error"] is None}
    assert {k: counts.get(k) for k in reference_db.dirty(SESSIONS)} == reference_db.dirty(SESSIONS)
    team = {(o["kind"], o["name"]): o["detail"] for o in plan["team_objects"]}
    assert ("view", "team_open_checkouts") in team
    assert ("column", "payment_checkout_sessions.coupon_code") in team
    assert ("trigger", "payment_checkout_sessions.team_checkout_status_audit") in team
    assert team[("function", "team_mark_paid(p_session_id uuid, p_coupon character varying)")].startswith(
        "calls complete_checkout_session"
    )
    assert {d["name"] for d in plan["function_drops"]} == {
        "get_or_create_checkout_session",
        "complete_checkout_session",
        "expire_old_checkout_sessions",
        "get_latest_checkout_session",
    }
    differences = [s["description"] for s in plan["steps"] if s["table"] == "payment_checkout_sessions"]
    assert "add column updated_at timestamp with time zone DEFAULT now() NOT NULL" in differences
    assert any(
        d.startswith("build index idx_payment_checkout_sessions_stripe_session_adopt: UNIQUE")
        for d in differences
    )

    # Nothing changed: not a row, not a relation, no history table.
    assert snapshots(reference_url) == before
    with connect(reference_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_class").fetchone()[0] == relations
        assert conn.execute("SELECT to_regclass('runner_schema_history')").fetchone()[0] is None

    text = run_cli("--database-url", reference_url, "adopt", "--check")
    assert text.exit_code == 3
    assert "checkout_pending_duplicate: 4 row(s) of payment_checkout_sessions" in text.stdout


def test_adopt_keeps_every_row_logs_every_change_and_the_calls_work(reference_url, project):
    before = snapshots(reference_url)
    with connect(reference_url) as conn:
        # The app's own login role, granted as Supabase grants service_role (every table, now and later)
        # and the four functions by name.
        role = f"ref_app_{uuid.uuid4().hex[:8]}"
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        conn.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {role}")
        for fn in (
            "get_or_create_checkout_session(uuid, varchar, varchar, numeric, varchar)",
            "complete_checkout_session(uuid, varchar, varchar)",
            "expire_old_checkout_sessions()",
            "get_latest_checkout_session(uuid)",
        ):
            conn.execute(f"GRANT EXECUTE ON FUNCTION {fn} TO {role}")

    result = run_cli("--database-url", reference_url, "adopt")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("Adopted in ")
    assert_adopted(reference_url, project, before)
    with connect(reference_url) as conn:
        logged = dict(conn.execute("SELECT rule, count(*) FROM runner_adoption_log GROUP BY rule").fetchall())
        for rule, rows in reference_db.dirty(SESSIONS).items():
            assert logged.get(rule, 0) >= min(rows, 1), rule
        # The documented resolutions, row by row.
        status = dict(
            conn.execute(
                "SELECT id::text, status FROM payment_checkout_sessions WHERE id = ANY(%s)",
                (
                    [
                        str(uuid.UUID(reference_db_md5(k)))
                        for k in ("d-status-1", "d-status-3", "d-dup-1a", "d-dup-1c")
                    ],
                ),
            ).fetchall()
        )
        assert sorted(status.values()) == ["completed", "expired", "failed", "pending"]
        original = conn.execute(
            "SELECT metadata->>'adoption_original_status' FROM payment_checkout_sessions WHERE id = md5('d-status-3')::uuid"
        ).fetchone()[0]
        assert original == "refunded"
        assert (
            conn.execute("SELECT active FROM subscription_plans WHERE code = 'legacy-gold'").fetchone()[0]
            is False
        )
        assert (
            conn.execute(
                "SELECT column_default FROM information_schema.columns WHERE table_name = "
                "'payment_checkout_sessions' AND column_name = 'expires_at'"
            ).fetchone()[0]
            is None
        )
        assert (
            conn.execute(
                "SELECT count(*) FROM payment_checkout_sessions WHERE subscription_plan = 'team-plan'"
            ).fetchone()[0]
            == 2
        )

        # The team's objects: view, extra column, trigger, own function calling complete_checkout_session.
        open_before = conn.execute("SELECT count(*) FROM team_open_checkouts").fetchone()[0]
        pending = conn.execute(
            "SELECT id, user_id FROM payment_checkout_sessions "
            "WHERE status = 'pending' AND stripe_session_id IS NULL LIMIT 1"
        ).fetchone()
        audit = conn.execute("SELECT count(*) FROM team_checkout_audit").fetchone()[0]
        assert conn.execute("SELECT team_mark_paid(%s, 'SPRING')", (pending[0],)).fetchone()[0] is True
        assert conn.execute(
            "SELECT status, coupon_code FROM payment_checkout_sessions WHERE id = %s", (pending[0],)
        ).fetchone() == ("completed", "SPRING")
        assert conn.execute("SELECT count(*) FROM team_checkout_audit").fetchone()[0] == audit + 1
        assert conn.execute("SELECT count(*) FROM team_open_checkouts").fetchone()[0] == open_before - 1
        # The reference's troubleshooting queries find the old rows; every query of its document runs unchanged
        # (in a transaction rolled back: its cleanup DELETE included).
        assert (
            conn.execute(
                "SELECT count(*) FROM webhook_events WHERE topic = 'checkout.session.completed'"
            ).fetchone()[0]
            > 0
        )
        assert conn.execute("SELECT count(*) FROM error_logs WHERE category = 'database'").fetchone()[0] > 0
        with conn.transaction(force_rollback=True):
            for sql in reference_queries():
                conn.execute(sql.replace("'user-uuid'", f"'{pending[1]}'"))

    # The reference's calls, with their named parameters, as the owner and as the app's role.
    for as_role in (None, role):
        with connect(reference_url) as conn:
            if as_role:
                conn.execute(f"SET ROLE {as_role}")
            reference_calls(conn, user_number=60 if as_role is None else 42)


def reference_queries() -> list[str]:
    from bench.reference import statements

    return statements()


def reference_db_md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()


def reference_calls(conn: psycopg.Connection, user_number: int) -> uuid.UUID:
    """The app's calls exactly as the reference makes them (Supabase RPC sends named parameters)."""
    user_id = uuid.UUID(reference_db_md5(f"u{user_number}"))
    session = conn.execute(
        "SELECT get_or_create_checkout_session(p_user_id => %s, p_email => %s, p_plan => 'enterprise', "
        "p_price => 99.99, p_provider => 'stripe')",
        (user_id, f"user{user_number}@example.com"),
    ).fetchone()[0]
    stripe_id = f"cs_ref_{uuid.uuid4().hex}"
    conn.execute(
        "UPDATE payment_checkout_sessions SET stripe_session_id = %s WHERE id = %s", (stripe_id, session)
    )
    conn.execute(
        "SELECT complete_checkout_session(p_session_id => %s, p_stripe_session_id => %s, "
        "p_stripe_customer_id => %s)",
        (session, stripe_id, f"cus_{user_number}"),
    )
    conn.execute("SELECT expire_old_checkout_sessions()")
    latest = conn.execute(
        "SELECT id, status FROM get_latest_checkout_session(p_user_id => %s)", (user_id,)
    ).fetchone()
    assert latest == (session, "completed")
    return session


def test_concurrent_writer_sees_no_error_during_adoption(reference_url, project):
    errors: list[str] = []
    touched: set[str] = set()
    calls = 0
    stop = threading.Event()

    def writer() -> None:
        nonlocal calls
        turn = 0
        # No server-side prepared statements: a statement prepared against the reference's functions fails
        # with "cached plan must not change result type" once their result changes (docs/adopting.md:
        # restart or reset the app's pool after adopting); supabase-js through PostgREST does not hit it.
        with connect(reference_url) as conn:
            conn.prepare_threshold = None
            while not stop.is_set():
                turn += 1
                number = 1 + turn % 100  # the users the reference database has
                user_id = uuid.UUID(reference_db_md5(f"u{number}"))
                try:
                    session = conn.execute(
                        "SELECT get_or_create_checkout_session(p_user_id => %s, p_email => %s, p_plan => 'pro', "
                        "p_price => 29.99, p_provider => 'stripe')",
                        (user_id, f"user{number}@example.com"),
                    ).fetchone()[0]
                    touched.update((str(session), str(user_id)))
                    stripe_id = f"cs_w_{uuid.uuid4().hex}"
                    conn.execute(
                        "UPDATE payment_checkout_sessions SET stripe_session_id = %s WHERE id = %s",
                        (stripe_id, session),
                    )
                    conn.execute(
                        "SELECT complete_checkout_session(p_session_id => %s, p_stripe_session_id => %s, "
                        "p_stripe_customer_id => %s)",
                        (session, stripe_id, f"cus_w_{number}"),
                    )
                    conn.execute(
                        "SELECT count(*) FROM payment_checkout_sessions WHERE status = 'pending' "
                        "AND created_at < now() - interval '1 hour'"
                    )
                    conn.execute("SELECT * FROM get_latest_checkout_session(p_user_id => %s)", (user_id,))
                    calls += 1
                except psycopg.Error as exc:
                    errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")

    before = snapshots(reference_url)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.3)
        result = execute.adopt(lambda: connect(reference_url), project, lock_timeout=0.2, batch=500)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(10)
    assert sorted(set(errors)) == []
    assert calls > 10
    assert result.recorded and result.resolved
    # Rows the writer changed (its sessions, their users) are the app's changes, not adoption's.
    assert_adopted(reference_url, project, before, frozenset(touched))


def _adopt_process(url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "--project-dir",
            str(REPO),
            "--database-url",
            url,
            "adopt",
            "--batch-size",
            "50",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, "DATABASE_URL": "", "PYTHONUNBUFFERED": "1"},
    )  # a progress line per step, at once


def test_killed_at_random_points_then_run_again(reference_url, project):
    before = snapshots(reference_url)
    rng = random.Random(12)
    interrupted = 0
    for _ in range(5):
        process = _adopt_process(reference_url)
        # Killed after a random number of its progress lines (one per step), a moment into the next step.
        for _line in range(rng.randint(1, 60)):
            if not process.stdout.readline():
                break
        time.sleep(rng.uniform(0, 0.05))
        if process.poll() is None:
            interrupted += 1
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()
        process.stderr.close()
        # The machine died with it: its server session goes too (with its advisory lock).
        with connect(reference_url) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    assert interrupted >= 3  # killed while it ran, not after
    final = _adopt_process(reference_url)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    assert_adopted(reference_url, project, before)


class Stop(Exception):
    pass


def unfinished(url: str) -> list[str]:
    """Indexes left invalid and constraints left NOT VALID in the schema."""
    with connect(url) as conn:
        return [
            name
            for (name,) in conn.execute(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND NOT i.indisvalid "
                "UNION ALL SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
                "AND NOT convalidated"
            )
        ]


@pytest.mark.parametrize(
    "stop_at, left",
    [
        # V030's transaction committed with its history row; its two indexes not built yet
        (
            "idx_payment_checkout_sessions_created_at (built CONCURRENTLY)",
            {"idx_payment_checkout_sessions_created_at", "idx_payment_checkout_sessions_completed"},
        ),
        # V010's CHECK added NOT VALID, not validated yet
        (
            "validate payment_checkout_sessions_stripe_sessions_nonnegative",
            {"payment_checkout_sessions_stripe_sessions_nonnegative", "idx_webhook_events_checkout_session"},
        ),
    ],
)
def test_later_files_index_and_constrain_the_adopted_tables_online(reference_url, project, stop_at, left):
    """A later file that indexes or constrains an adopted table runs in two parts (runner/adoption/online.py):
    stopped between them, the file is recorded, and the next adoption finds and finishes the second part."""
    before = snapshots(reference_url)

    def on_step(message: str) -> None:
        if stop_at in message:
            raise Stop(message)

    with pytest.raises(Stop):
        execute.adopt(lambda: connect(reference_url), project, on_step=on_step)
    plan = execute.check(lambda: connect(reference_url), project)
    leftovers = {s.description.split(" ")[1] for s in plan.steps if s.phase == 8}
    assert leftovers == left
    assert not plan.nothing_to_do
    assert run_cli("--database-url", reference_url, "adopt").exit_code == 0
    assert unfinished(reference_url) == []
    with connect(reference_url) as conn:
        for name in left:
            assert conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL OR EXISTS (SELECT FROM pg_constraint WHERE conname = %s)",
                (name, name),
            ).fetchone()[0], name
    assert_adopted(reference_url, project, before)
    assert execute.check(lambda: connect(reference_url), project).nothing_to_do


def test_the_later_files_split_for_adoption():
    """What online.split makes of the project's files that touch the reference's tables."""
    from runner import project as project_mod
    from runner.adoption import online

    files = {f.name: f for f in project_mod.load(REPO).versioned()}
    adopted = set(TABLES)
    v010 = online.split(files["tables/V010__stripe_checkout_flow.sql"], "public", adopted)
    assert "CHECK (stripe_sessions_created >= 0) NOT VALID;" in v010.transaction
    assert "CREATE INDEX" not in v010.transaction
    assert [s.sql[0].split(" ON ")[0] for s in v010.after] == [
        "ALTER TABLE public.payment_checkout_sessions VALIDATE CONSTRAINT "
        "payment_checkout_sessions_stripe_sessions_nonnegative",
        "CREATE INDEX CONCURRENTLY idx_webhook_events_checkout_session",
    ]
    v030 = online.split(files["tables/V030__checkout_session_rollup.sql"], "public", adopted)
    assert "CREATE TABLE public.checkout_session_rollup" in v030.transaction
    assert "CREATE INDEX" not in v030.transaction
    assert len(v030.after) == 2 and all("CONCURRENTLY" in s.sql[0] for s in v030.after)
    v031 = online.split(files["tables/V031__rollup_completion_bands.sql"], "public", adopted)
    assert "ADD COLUMN completed_more" in v031.transaction and "CREATE INDEX" not in v031.transaction
    # a file on tables it made itself runs as written
    assert online.split(files["tables/V006__email_outbox.sql"], "public", adopted) is None
    assert online.split(files["tables/V010__stripe_checkout_flow.sql"], "public", set()) is None


def test_adopt_twice_second_run_has_nothing_to_do(reference_url, project):
    assert run_cli("--database-url", reference_url, "adopt").exit_code == 0
    with connect(reference_url) as conn:
        logged = conn.execute("SELECT count(*) FROM runner_adoption_log").fetchone()[0]
    check = run_cli("--database-url", reference_url, "adopt", "--check")
    assert check.exit_code == 0, check.output
    again = run_cli("--database-url", reference_url, "adopt")
    assert again.exit_code == 0
    assert again.stdout.startswith("Nothing to adopt")
    with connect(reference_url) as conn:
        assert conn.execute("SELECT count(*) FROM runner_adoption_log").fetchone()[0] == logged


def test_a_database_runner_apply_built_has_nothing_to_adopt(db_url):
    check = run_cli("--database-url", db_url, "adopt", "--check", "--format", "json")
    assert check.exit_code == 0, check.output
    plan = json.loads(check.stdout)
    assert plan["nothing_to_do"] is True and plan["dirty_rows"] == 0
    result = run_cli("--database-url", db_url, "adopt")
    assert result.exit_code == 0
    assert result.stdout.startswith("Nothing to adopt")


def test_a_column_of_another_type_stops_adoption_before_any_change(make_database):
    url = make_database()
    with connect(url) as conn:
        reference_db.build_schema(conn)
        conn.execute("DROP VIEW team_open_checkouts")
        conn.execute("ALTER TABLE payment_checkout_sessions ALTER COLUMN email TYPE TEXT")
    check = run_cli("--database-url", url, "adopt", "--check")
    assert check.exit_code == 1
    assert "payment_checkout_sessions.email is text" in check.stdout
    assert check.stderr == "Error: cannot adopt: 1 thing(s) to fix by hand first (listed above)\n"
    result = run_cli("--database-url", url, "adopt")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: cannot adopt: payment_checkout_sessions.email is text, the project has character varying(255)"
    )
    with connect(url) as conn:
        assert conn.execute("SELECT to_regclass('runner_schema_history')").fetchone()[0] is None


def test_adopt_on_supabase(make_database, pg_admin_url, project):
    """platform = "supabase": users are auth.users accounts. A users row without one (and its sessions) is
    deleted with its before-image logged; the reference's RPC works for service_role, anon sees nothing."""
    from psycopg.conninfo import make_conninfo

    from tests import supabase_support as supabase

    dbname, owner = supabase.make_supabase_database(make_database, pg_admin_url)
    url = make_conninfo(pg_admin_url, dbname=dbname, user=owner)
    with connect(url) as conn:
        reference_db.build_schema(conn)
        reference_db.seed(conn, SESSIONS)
    with connect(make_conninfo(pg_admin_url, dbname=dbname)) as admin:
        admin.execute(
            "INSERT INTO auth.users (id, aud, role, email, created_at) "
            "SELECT id, 'authenticated', 'authenticated', coalesce(email, id || '@example.invalid'), "
            "created_at FROM public.users WHERE id <> md5('u50')::uuid"
        )
    before = snapshots(url)
    supa = supabase.supabase_project(project)

    result = execute.adopt(lambda: connect(url), supa)

    assert result.resolved["user_auth_missing"] >= 2  # the user and at least one of its sessions
    assert execute.check(lambda: connect(url), supa).nothing_to_do
    with connect(url) as conn:
        gone = {
            r[0]
            for r in conn.execute(
                "SELECT row_id FROM runner_adoption_log WHERE after IS NULL AND table_name = 'payment_checkout_sessions'"
            )
        }
        assert (
            gone
            and not conn.execute(
                "SELECT count(*) FROM payment_checkout_sessions WHERE id::text = ANY(%s)", (list(gone),)
            ).fetchone()[0]
        )
        assert not [r.name for r in datatests.run(conn, supa) if not r.passed]
    removed = gone | {str(uuid.UUID(reference_db_md5("u50")))}
    kept = {t: {k: v for k, v in rows.items() if k not in removed} for t, rows in before.items()}
    after = snapshots(url)
    for table, rows in kept.items():
        assert set(rows) <= set(after[table])
    user_id = uuid.UUID(reference_db_md5("u60"))
    with supabase.as_role(pg_admin_url, dbname, "service_role") as api:
        session = supabase.reference_checkout(api, user_id, email="user60@example.com")
        assert session is not None
    with (
        supabase.as_role(pg_admin_url, dbname, "anon") as api,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        api.execute("SELECT count(*) FROM payment_checkout_sessions")


def test_two_checks_and_two_adoptions_at_once(reference_url, project):
    """Two `adopt --check` run side by side (each its own scratch schema); of two adoptions at once, one
    waits for the other's lock and then finds nothing to do."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        plans = list(pool.map(lambda _: execute.check(lambda: connect(reference_url), project), range(2)))
    assert [p.dirty_rows for p in plans] == [plans[0].dirty_rows] * 2 and plans[0].dirty_rows > 0
    assert [p.adopt_versions for p in plans] == [plans[0].adopt_versions] * 2

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: execute.adopt(lambda: connect(reference_url), project), range(2)))
    assert sorted(r.plan.nothing_to_do for r in results) == [False, True]
    assert execute.check(lambda: connect(reference_url), project).nothing_to_do
