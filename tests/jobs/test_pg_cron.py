"""Jobs inside the database: run_scheduled_job (any server) and `runner schedule --pg-cron` (a server with pg_cron).

pg_cron must be preloaded by the server (shared_preload_libraries) and lives in one database
(cron.database_name): the embedded PostgreSQL 18 has no pg_cron, so those tests skip saying so; CI's Debian
PostgreSQL 15 preloads it (.ci/run) with cron.database_name = checkout_cron, the database they build.
"""

from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.conninfo import make_conninfo

from runner import migrate
from runner.cli import cli
from runner.jobs import pg_cron
from runner.jobs import tasks as jobs
from runner.locks import LOCK_CLASS
from tests.conftest import REPO
from tests.jobs.test_jobs import add_sessions, runs, statuses


def run_cli(url: str, *args: str):
    return CliRunner().invoke(
        cli,
        ["--database-url", url, "--project-dir", str(REPO), *args],
        env={"DATABASE_URL": None},
        catch_exceptions=False,
    )


# -- run_scheduled_job: any PostgreSQL -----------------------------------------------------------------
def test_expire_in_one_call_recorded_like_runner_job(conn):
    add_sessions(conn, 3, expires="now() - interval '1 hour'")
    add_sessions(conn, 2, created="now()", plan="basic")
    assert conn.execute("SELECT run_scheduled_job('expire')").fetchone() == ("expire: 3 rows in 1 batch(es)",)
    assert statuses(conn) == {"expired": 3, "pending": 2}
    assert runs(conn) == [("expire", "succeeded", 3, 1, None)]
    details, client = conn.execute("SELECT details, client FROM job_runs").fetchone()
    assert details["in_database"] is True and details["rollup_deltas_folded"] > 0
    assert client.endswith("(run_scheduled_job)")


def test_cleanup_and_rollup_in_one_call(conn):
    add_sessions(
        conn,
        2,
        created="now() - interval '200 days'",
        status="completed",
        completed="now() - interval '199 days'",
        expires="now() - interval '190 days'",
    )
    assert conn.execute("SELECT run_scheduled_job('cleanup')").fetchone() == (
        "cleanup: 2 rows in 1 batch(es)",
    )
    assert conn.execute("SELECT count(*) FROM payment_checkout_sessions_archive").fetchone() == (2,)
    add_sessions(conn, 4)
    assert conn.execute("SELECT run_scheduled_job('rollup')").fetchone()[0].startswith("rollup: ")
    assert conn.execute("SELECT count(*) FROM checkout_session_rollup_delta").fetchone() == (0,)
    assert [r[:2] for r in runs(conn)] == [("cleanup", "succeeded"), ("rollup", "succeeded")]


@pytest.mark.parametrize("name", ["remind", "send-email", "nope", None])
def test_only_the_database_jobs_are_accepted(conn, name):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="p_job must be expire, cleanup or rollup"):
        conn.execute("SELECT run_scheduled_job(%s)", (name,))
    assert runs(conn) == []


def test_skipped_while_runner_job_holds_the_lock(conn, db_url):
    add_sessions(conn, 2, expires="now() - interval '1 hour'")
    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, jobs.JOBS["expire"].lock_key))
        result = conn.execute("SELECT run_scheduled_job('expire')").fetchone()[0]
    assert result == "expire: skipped: another run of this job holds its lock"
    assert statuses(conn) == {"pending": 2}
    assert runs(conn) == [("expire", "skipped", 0, 0, "another run of this job holds its lock")]


def test_runner_job_is_skipped_while_the_database_run_holds_the_lock(conn, db_url):
    """The other way round: pg_cron's run is in progress (its transaction open) when cron fires `runner job`."""
    add_sessions(conn, 2, expires="now() - interval '1 hour'")
    in_database = psycopg.connect(db_url)
    try:
        in_database.execute("SELECT run_scheduled_job('expire')")  # transaction left open: lock held
        result = jobs.run(lambda: psycopg.connect(db_url, autocommit=True), "expire")
        assert result.outcome == "skipped"
        in_database.commit()
    finally:
        in_database.close()
    assert sorted(r[:2] for r in runs(conn)) == [("expire", "skipped"), ("expire", "succeeded")]
    assert statuses(conn) == {"expired": 2}


def test_the_two_at_once_one_works_one_skips(conn, db_url):
    add_sessions(conn, 50, expires="now() - interval '1 hour'")
    barrier = threading.Barrier(2)
    outcomes = []

    def database_run():
        with psycopg.connect(db_url, autocommit=True) as c:
            barrier.wait()
            outcomes.append(c.execute("SELECT run_scheduled_job('expire')").fetchone()[0].split(": ")[1])

    def runner_run():
        barrier.wait()
        outcomes.append(jobs.run(lambda: psycopg.connect(db_url, autocommit=True), "expire").outcome)

    threads = [threading.Thread(target=database_run), threading.Thread(target=runner_run)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses(conn) == {"expired": 50}
    recorded = sorted(r[1] for r in runs(conn))
    # Either both ran one after the other (the first finished before the second started) or one skipped.
    assert recorded in (["skipped", "succeeded"], ["succeeded", "succeeded"])
    assert sum(r[2] for r in runs(conn)) == 50


def test_a_failing_run_is_recorded_failed_and_keeps_nothing(conn):
    add_sessions(
        conn,
        2,
        created="now() - interval '200 days'",
        status="completed",
        completed="now() - interval '199 days'",
        expires="now() - interval '190 days'",
    )
    # The archive refuses a live table with a column it lacks (it would drop the values).
    conn.execute("ALTER TABLE payment_checkout_sessions ADD COLUMN surprise TEXT")
    result = conn.execute("SELECT run_scheduled_job('cleanup')").fetchone()[0]
    assert result.startswith("cleanup: failed: [SQLSTATE ")
    ((job, outcome, rows, batches, error),) = runs(conn)
    assert (job, outcome, rows, batches) == ("cleanup", "failed", 0, 0)
    assert error == result.removeprefix("cleanup: failed: ")
    assert statuses(conn) == {"completed": 2}


# -- the command without pg_cron -----------------------------------------------------------------------
def test_pg_cron_missing_is_one_error_line_saying_what_to_do(db_url, pg_admin_url):
    with psycopg.connect(pg_admin_url) as admin:
        if admin.execute("SELECT current_setting('cron.database_name', true)").fetchone()[0]:
            pytest.skip("this server runs pg_cron: see test_install_from_another_database")
    result = run_cli(db_url, "schedule", "--pg-cron")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: pg_cron is not installed in database ")
    assert (
        "shared_preload_libraries = 'pg_cron'" in result.stderr
        and "CREATE EXTENSION pg_cron" in result.stderr
    )
    assert result.stderr.count("\n") == 1


def test_an_unapplied_database_is_refused_first(empty_db_url):
    result = run_cli(empty_db_url, "schedule", "--pg-cron")
    assert result.exit_code == 1
    assert result.stderr.endswith(
        "public.run_scheduled_job does not exist in database "
        f"'{psycopg.conninfo.conninfo_to_dict(empty_db_url)['dbname']}': run "
        "`runner apply` first\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--remove"], "--remove goes with --pg-cron"),
        (["--pg-cron", "--job", "expire"], "--pg-cron takes no --job, --run-now, --max-runs or --duration"),
    ],
)
def test_pg_cron_usage_errors(db_url, args, message):
    result = run_cli(db_url, "schedule", *args)
    assert result.exit_code == 2 and message in result.stderr


# -- with pg_cron ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cron_url(pg_admin_url, project):
    """The database pg_cron runs in (cron.database_name), made afresh with the project and the extension."""
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        dbname = admin.execute("SELECT current_setting('cron.database_name', true)").fetchone()[0]
        if not dbname:
            pytest.skip(
                "pg_cron is not preloaded by this server (shared_preload_libraries = 'pg_cron'): "
                "the embedded PostgreSQL has none; CI's Debian PostgreSQL 15 has it (.ci/run)"
            )
        if admin.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron'").fetchone() is None:
            pytest.skip("pg_cron is preloaded but its extension files are missing (postgresql-NN-cron)")
        # Not dropped when it exists: pg_cron's scheduler ends for good when its database goes (until the
        # server restarts). Its project schema is made afresh instead.
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{dbname}"')
    url = make_conninfo(pg_admin_url, dbname=dbname)
    if exists:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {project.schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {project.schema}")
    migrate.apply(lambda: psycopg.connect(url, autocommit=True), project)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
    return url


@pytest.fixture
def cron(cron_url, project):
    """A connection to the pg_cron database, its cron jobs and job runs cleared before and after."""
    conn = psycopg.connect(cron_url, autocommit=True)

    def clear():
        conn.execute("SELECT cron.unschedule(jobid) FROM cron.job")
        conn.execute("TRUNCATE job_runs, payment_checkout_sessions CASCADE")

    clear()
    try:
        yield conn
    finally:
        clear()
        conn.close()


def cron_jobs(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    return conn.execute("SELECT jobname, schedule, command FROM cron.job ORDER BY jobname").fetchall()


def test_install_update_in_place_and_remove(cron, cron_url):
    first = run_cli(cron_url, "schedule", "--pg-cron")
    assert first.exit_code == 0, first.output
    assert [line.split()[:3] for line in first.stdout.splitlines()] == [
        ["installed", "checkout-sessions-expire", "0"],
        ["installed", "checkout-sessions-cleanup", "30"],
        ["installed", "checkout-sessions-rollup", "*/5"],
    ]
    assert cron_jobs(cron) == [
        ("checkout-sessions-cleanup", "30 3 * * 0", "SELECT public.run_scheduled_job('cleanup')"),
        ("checkout-sessions-expire", "0 * * * *", "SELECT public.run_scheduled_job('expire')"),
        ("checkout-sessions-rollup", "*/5 * * * *", "SELECT public.run_scheduled_job('rollup')"),
    ]
    ids = cron.execute("SELECT jobname, jobid FROM cron.job ORDER BY jobname").fetchall()

    again = json.loads(run_cli(cron_url, "schedule", "--pg-cron", "--format", "json").stdout)
    assert [j["action"] for j in again] == ["unchanged"] * 3

    # Someone changed a schedule by hand: installing again puts it back, in place (the same job id).
    cron.execute("SELECT cron.schedule('checkout-sessions-expire', '7 7 * * *', 'SELECT 1')")
    updated = json.loads(run_cli(cron_url, "schedule", "--pg-cron", "--format", "json").stdout)
    assert [j["action"] for j in updated] == ["updated", "unchanged", "unchanged"]
    assert cron.execute("SELECT jobname, jobid FROM cron.job ORDER BY jobname").fetchall() == ids
    assert cron_jobs(cron)[1][1:] == ("0 * * * *", "SELECT public.run_scheduled_job('expire')")

    removed = run_cli(cron_url, "schedule", "--pg-cron", "--remove")
    assert (
        removed.exit_code == 0
        and [line.split()[0] for line in removed.stdout.splitlines()] == ["removed"] * 3
    )
    assert cron_jobs(cron) == []
    absent = json.loads(run_cli(cron_url, "schedule", "--pg-cron", "--remove", "--format", "json").stdout)
    assert [j["action"] for j in absent] == ["absent"] * 3


def test_two_installs_at_once_leave_three_jobs(cron, cron_url, project):
    barrier = threading.Barrier(4)
    errors = []

    def install():
        try:
            with psycopg.connect(cron_url, autocommit=True) as conn:
                barrier.wait()
                pg_cron.install(conn, project)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=install) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [r[0] for r in cron_jobs(cron)] == [
        "checkout-sessions-cleanup",
        "checkout-sessions-expire",
        "checkout-sessions-rollup",
    ]


def test_each_installed_command_works(cron, cron_url, project):
    pg_cron.install(cron, project)
    cron.execute("INSERT INTO users (email) VALUES ('cron@example.com')")
    for _name, _, command in cron_jobs(cron):
        cron.execute(command)
    assert sorted(r[:2] for r in runs(cron)) == [
        ("cleanup", "succeeded"),
        ("expire", "succeeded"),
        ("rollup", "succeeded"),
    ]


def test_pg_cron_itself_runs_a_job(cron, project):
    """pg_cron firing the installed command (every minute here, so the test waits at most ~70 s)."""
    add_sessions(cron, 2, expires="now() - interval '1 hour'")
    cron.execute(
        "SELECT cron.schedule('checkout-sessions-test', '* * * * *', %s)",
        (pg_cron.command(project, "expire"),),
    )
    deadline = time.monotonic() + 75
    while time.monotonic() < deadline and not runs(cron):
        time.sleep(1)
    assert [r[:3] for r in runs(cron)][:1] == [("expire", "succeeded", 2)]
    assert statuses(cron) == {"expired": 2}
    detail = cron.execute("SELECT status FROM cron.job_run_details ORDER BY runid DESC LIMIT 1").fetchone()
    assert detail == ("succeeded",)


def test_install_from_another_database(cron, db_url):
    """The project in another database of the server: scheduled from pg_cron's database for it (pg_cron >= 1.4)."""
    dbname = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
    installed = json.loads(run_cli(db_url, "schedule", "--pg-cron", "--format", "json").stdout)
    assert [(j["name"], j["action"]) for j in installed] == [
        (f"checkout-sessions-{dbname}-{job}", "installed") for job in ("expire", "cleanup", "rollup")
    ]
    assert cron.execute("SELECT DISTINCT database FROM cron.job").fetchall() == [(dbname,)]
    again = json.loads(run_cli(db_url, "schedule", "--pg-cron", "--format", "json").stdout)
    assert [j["action"] for j in again] == ["unchanged"] * 3
    with psycopg.connect(db_url, autocommit=True) as conn:
        add_sessions(conn, 1, expires="now() - interval '1 hour'")
        conn.execute(installed[0]["command"])
        assert statuses(conn) == {"expired": 1}
    removed = json.loads(run_cli(db_url, "schedule", "--pg-cron", "--remove", "--format", "json").stdout)
    assert [j["action"] for j in removed] == ["removed"] * 3
    assert cron.execute("SELECT count(*) FROM cron.job").fetchone() == (0,)
