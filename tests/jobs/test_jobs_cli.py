"""`runner job ...` and `runner schedule` in-process: exit codes (0, 1, 2, 6) and exact lines."""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.jobs.tasks import JOBS
from runner.locks import LOCK_CLASS
from tests.conftest import REPO
from tests.jobs.test_jobs import add_sessions, statuses
from tests.jobs.test_mail import SmtpServer

NO_MAIL = {"SMTP_URL": None, "MAIL_FROM": None, "APP_URL": None, "DATABASE_URL": None}


def run(url: str, *args: str, env: dict | None = None):
    return CliRunner().invoke(
        cli,
        ["--database-url", url, "--project-dir", str(REPO), *args],
        env={**NO_MAIL, **(env or {})},
        catch_exceptions=False,
    )


def test_expire_prints_one_summary_line(conn, db_url):
    add_sessions(conn, 5, expires="now() - interval '1 hour'")
    result = run(db_url, "job", "expire", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("expire: 5 rows in 3 batch(es), ")
    assert result.stdout.count("\n") == 1 and result.stderr == ""
    assert statuses(conn) == {"expired": 5}


def test_expire_dry_run_and_json(conn, db_url):
    add_sessions(conn, 4, expires="now() - interval '1 hour'")
    dry = run(db_url, "job", "expire", "--dry-run")
    assert dry.exit_code == 0 and dry.stdout.startswith("expire: dry run: 4 row(s) would change, ")
    assert statuses(conn) == {"pending": 4}
    data = json.loads(run(db_url, "job", "expire", "--format", "json").stdout)
    assert (data["job"], data["outcome"], data["rows"], data["batches"]) == ("expire", "succeeded", 4, 1)
    assert data["details"]["batch_size"] == 10000


def test_overlapping_run_exits_6_with_one_line_not_an_error(conn, db_url):
    holder = psycopg.connect(db_url, autocommit=True, application_name="cron copy 1")
    holder.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, JOBS["cleanup"].lock_key))
    try:
        result = run(db_url, "job", "cleanup")
        as_json = run(db_url, "job", "cleanup", "--format", "json")
    finally:
        holder.close()
    assert result.exit_code == 6
    assert result.stdout == ""
    assert result.stderr.startswith("cleanup: skipped: another run of this job holds its lock: pid ")
    assert "(cron copy 1, user " in result.stderr and result.stderr.count("\n") == 1
    assert "Error" not in result.stderr
    assert as_json.exit_code == 6 and json.loads(as_json.stdout)["outcome"] == "skipped"
    assert [r[0] for r in conn.execute("SELECT outcome FROM job_runs")] == ["skipped", "skipped"]
    assert run(db_url, "job", "cleanup").exit_code == 0  # lock released: runs again


def test_bad_options_are_usage_errors_and_change_nothing(conn, db_url):
    add_sessions(conn, 2, expires="now() - interval '1 hour'")
    for args in (
        ("expire", "--batch-size", "0"),
        ("cleanup", "--retention-days", "-3"),
        ("cleanup", "--retention-days", "ninety"),
        ("history", "vacuum"),
    ):
        result = run(db_url, "job", *args)
        assert result.exit_code == 2, args
        assert "Invalid value" in result.stderr
    assert statuses(conn) == {"pending": 2}
    assert conn.execute("SELECT count(*) FROM job_runs").fetchone()[0] == 0


@pytest.mark.parametrize("job", ["send-email", "remind"])
def test_a_job_without_smtp_url_is_one_error_line_and_a_failed_run_in_job_runs(conn, db_url, job):
    """Issue 14 point 9: the missing SMTP_URL is read inside the recorded run, so `runner doctor` and
    /metrics see the failure (before, remind failed before any job_runs row)."""
    conn.execute("SELECT enqueue_email('verification', 'a@example.com', 'v:1')")
    result = run(db_url, "job", job)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: job {job} failed after {1 if job == 'remind' else 0} batch(es), 0 row(s) "
        "done: SMTP_URL is not set (e.g. smtp://user:password@mail.example.com:587); "
        "queued emails stay queued until it is\n"
    )
    assert conn.execute("SELECT status FROM email_outbox").fetchone()[0] == "queued"
    assert conn.execute("SELECT job, outcome, error FROM job_runs").fetchall() == [
        (
            job,
            "failed",
            (
                "SMTP_URL is not set (e.g. smtp://user:password@mail.example.com:587); "
                "queued emails stay queued until it is"
            ),
        )
    ]


def test_a_failed_job_exits_1_and_is_recorded(conn, db_url, project):
    conn.execute("SELECT enqueue_email('verification', 'a@example.com', 'v:1')")
    down = SmtpServer()
    result = run(db_url, "job", "send-email", env={"SMTP_URL": down.url})
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: job send-email failed after 0 batch(es), 0 row(s) done: "
        f"SMTP server smtp://127.0.0.1:{down.port} unavailable: "
    )
    history = run(db_url, "job", "history", "--format", "json")
    [row] = json.loads(history.stdout)
    assert (row["job"], row["outcome"]) == ("send-email", "failed")
    assert "unavailable" in row["error"]


def test_remind_dry_run_lists_who_would_be_reminded_and_remind_sends(conn, db_url):
    [sid] = add_sessions(conn, 1, created="now() - interval '9 hours'")
    email = conn.execute("SELECT email FROM payment_checkout_sessions").fetchone()[0]
    dry = run(db_url, "job", "remind", "--dry-run")
    assert dry.exit_code == 0
    assert dry.stdout.splitlines()[0].startswith(f"{email}  pro  created ")
    assert dry.stdout.splitlines()[0].endswith(f"attempts 1  session {sid}")
    assert dry.stdout.splitlines()[1] == "remind: 1 would be reminded"
    assert conn.execute("SELECT count(*) FROM email_outbox").fetchone()[0] == 0

    with SmtpServer() as smtp:
        result = run(db_url, "job", "remind", env={"SMTP_URL": smtp.url, "MAIL_FROM": "shop@example.com"})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("remind: queued 1, sent 1, retrying 0, failed 0, canceled 0, ")
    assert [m["To"] for m in smtp.inbox.messages] == [email]
    assert run(db_url, "job", "remind", "--dry-run").stdout == "remind: 0 would be reminded\n"


def test_cleanup_uses_the_project_retention_unless_overridden(conn, db_url):
    add_sessions(
        conn,
        3,
        status="completed",
        created="now() - interval '60 days'",
        completed="now() - interval '50 days'",
    )
    assert run(db_url, "job", "cleanup", "--dry-run").stdout.startswith("cleanup: dry run: 0 row(s)")
    assert run(db_url, "job", "cleanup", "--retention-days", "30", "--dry-run").stdout.startswith(
        "cleanup: dry run: 3 row(s)"
    )
    assert run(db_url, "job", "cleanup").stdout.startswith("cleanup: 0 rows in 1 batch(es)")
    assert run(db_url, "job", "cleanup", "--retention-days", "30").stdout.startswith(
        "cleanup: 3 rows in 1 batch(es)"
    )
    assert conn.execute("SELECT count(*) FROM payment_checkout_sessions_archive").fetchone()[0] == 3


def test_rollup_job_folds_the_deltas(conn, db_url):
    add_sessions(conn, 3)
    waiting = conn.execute("SELECT count(*) FROM checkout_session_rollup_delta").fetchone()[0]
    assert waiting > 0
    assert run(db_url, "job", "rollup", "--dry-run").stdout.startswith(f"rollup: dry run: {waiting} row(s)")
    assert run(db_url, "job", "rollup").stdout.startswith(f"rollup: {waiting} rows in 1 batch(es)")
    assert conn.execute("SELECT count(*) FROM checkout_session_rollup_delta").fetchone()[0] == 0
    assert run(db_url, "job", "rollup").stdout.startswith("rollup: 0 rows in 1 batch(es)")


def test_list_and_history(conn, db_url):
    listing = run(db_url, "job", "list")
    assert listing.stdout.splitlines()[0].split()[:6] == ["expire", "0", "*", "*", "*", "*"]
    assert [r["name"] for r in json.loads(run(db_url, "job", "list", "--format", "json").stdout)] == [
        "expire",
        "remind",
        "cleanup",
        "send-email",
        "rollup",
    ]
    assert run(db_url, "job", "history").stdout == "No job runs recorded yet.\n"
    run(db_url, "job", "expire")
    run(db_url, "job", "cleanup")
    lines = run(db_url, "job", "history").stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["cleanup", "expire"]
    assert all("succeeded" in line and "0 rows" in line for line in lines)
    assert len(run(db_url, "job", "history", "expire").stdout.splitlines()) == 1


def test_schedule_keeps_running_when_a_job_fails(conn, db_url):
    add_sessions(conn, 3, expires="now() - interval '1 hour'")
    result = run(db_url, "schedule", "--run-now", "--max-runs", "4")  # no SMTP_URL: mail jobs fail
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("expire: 3 rows in 1 batch(es)")
    assert result.stdout.splitlines()[1].startswith("cleanup: 0 rows in 1 batch(es)")
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    unset = "SMTP_URL is not set (e.g. smtp://user:password@mail.example.com:587); queued emails stay queued until it is"
    assert errors == [
        f"Error: remind: job remind failed after 1 batch(es), 0 row(s) done: {unset}",
        f"Error: send-email: job send-email failed after 0 batch(es), 0 row(s) done: {unset}",
    ]
    assert result.stderr.splitlines()[-1] == "schedule: stopped after 4 job run(s)"
    assert statuses(conn) == {"expired": 3}


def test_schedule_duration_bound(conn, db_url):
    result = run(db_url, "schedule", "--job", "expire", "--duration", "0")
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "schedule (UTC): expire '0 * * * *'",
        "schedule: stopped after 0 job run(s)",
    ]
