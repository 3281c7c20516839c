"""`runner doctor`: pass on a freshly applied database, warn on crossed thresholds, fail on broken things."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.errors import ConfigError
from runner.reporting import doctor
from runner.reporting.alerts import Thresholds
from tests.reporting_seed import seed

JOBS = ("expire", "remind", "cleanup", "send-email", "rollup")


def levels(checks) -> dict[str, str]:
    return {c.name: c.level for c in checks}


def record_job(conn, job, outcome="succeeded", ago="5 minutes", error=None):
    conn.execute(
        "INSERT INTO job_runs (job, started_at, finished_at, outcome, error) "
        "VALUES (%s, now() - %s::interval, CASE WHEN %s <> 'running' THEN now() - %s::interval END, %s, %s)",
        (job, ago, outcome, ago, outcome, error),
    )


def test_fresh_database_passes_with_jobs_never_run_as_warnings(conn, project):
    checks = doctor.run(conn, project, Thresholds())
    by_name = levels(checks)
    assert [c for c in checks if c.level == "fail"] == []
    assert {name: level for name, level in by_name.items() if level == "warn"} == {
        f"job {j}": "warn" for j in JOBS
    }
    assert by_name["tables, functions, indexes"] == by_name["rollup"] == by_name["migrations"] == "pass"


def test_cli_exit_codes_on_fresh_database(db_url):
    ok = CliRunner().invoke(cli, ["--database-url", db_url, "doctor"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.splitlines()[0] == "PASS  database: " + ok.output.splitlines()[0].split(": ", 1)[1]
    assert "WARN  job expire: never ran  -> schedule `runner job expire` (hourly)" in ok.output
    strict = CliRunner().invoke(cli, ["--database-url", db_url, "doctor", "--fail-on", "warn"])
    assert strict.exit_code == 1
    assert strict.output.splitlines()[-1] == (
        "Error: 5 check(s) at warn or worse: job expire, job remind, job cleanup, job send-email, job rollup"
    )


def test_healthy_jobs_and_data_pass_everything(conn, project):
    for job in JOBS:
        record_job(conn, job)
    assert {c.level for c in doctor.run(conn, project, Thresholds())} == {"pass"}


def test_thresholds_turn_seeded_trouble_into_warnings(conn, project):
    seed(conn)
    for job in JOBS:
        record_job(conn, job)
    by_name = levels(doctor.run(conn, project, Thresholds()))
    assert by_name["stuck sessions"] == "warn"  # seeded pending sessions with Stripe ids, days old
    assert by_name["webhooks"] == "warn"  # seeded failed events
    assert by_name["expiry"] == "warn"  # seeded pending sessions past expires_at
    relaxed = Thresholds(
        stuck_sessions=10_000, webhook_failures=10_000, abandonment_rate=100, errors_24h=10_000
    )
    checks = {c.name: c for c in doctor.run(conn, project, relaxed)}
    assert checks["stuck sessions"].level == checks["abandonment"].level == "pass"
    # failures are tolerated now, but seeded events left in `received` for hours are a backlog
    assert checks["webhooks"].level == "warn" and checks["webhooks"].detail.startswith("an event has waited")
    strict = levels(doctor.run(conn, project, Thresholds(abandonment_rate=10, errors_24h=0)))
    assert strict["abandonment"] == strict["errors"] == "warn"


def test_overdue_failed_and_running_jobs(conn, project):
    record_job(conn, "expire", ago="3 hours")
    record_job(conn, "remind", outcome="failed", ago="1 hour", error="smtp down")
    record_job(conn, "remind", ago="2 hours")
    record_job(conn, "cleanup", outcome="running", ago="3 hours")
    record_job(conn, "cleanup", ago="3 days")
    checks = {c.name: c for c in doctor.run(conn, project, Thresholds())}
    assert checks["job expire"].level == "fail"
    assert checks["job expire"].detail.startswith(
        "overdue: last success 3.0 h ago (runs hourly, overdue after 2.0 h)"
    )
    assert checks["job remind"].level == "warn" and "smtp down" in checks["job remind"].detail
    assert checks["job cleanup"].level == "warn" and checks["job cleanup"].detail.startswith("running since")
    assert levels(doctor.run(conn, project, Thresholds(expire_overdue_hours=4)))["job expire"] == "pass"


def test_broken_schema_and_rollup_fail(conn, project, db_url):
    conn.execute("UPDATE checkout_session_rollup SET sessions = sessions + 1")
    conn.execute(
        "INSERT INTO checkout_session_rollup (bucket, subscription_plan, status, sessions) "
        "VALUES (checkout_rollup_bucket(now()), 'pro', 'pending', 2)"
    )
    assert levels(doctor.run(conn, project, Thresholds()))["rollup"] == "fail"
    conn.execute("DROP INDEX idx_payment_checkout_sessions_pending")
    result = CliRunner().invoke(cli, ["--database-url", db_url, "doctor", "--format", "json"])
    assert result.exit_code == 1
    checks = json.loads(result.output[: result.output.rindex("]") + 1])
    structure = next(c for c in checks if c["name"] == "tables, functions, indexes")
    assert structure["level"] == "fail" and "idx_payment_checkout_sessions_pending" in structure["detail"]


def test_thresholds_from_environment():
    env = {
        "ALERT_ABANDONMENT_RATE": "75.5",
        "ALERT_STUCK_SESSIONS": "3",
        "ALERT_WEBHOOK_FAILURES": "5",
        "ALERT_EXPIRE_OVERDUE_HOURS": "1.5",
    }
    t = Thresholds.from_env(env)
    assert (t.abandonment_rate, t.stuck_sessions, t.webhook_failures, t.expire_overdue_hours) == (
        75.5,
        3,
        5,
        1.5,
    )
    with pytest.raises(ConfigError, match="ALERT_STUCK_SESSIONS must be a whole number, got 'many'"):
        Thresholds.from_env({"ALERT_STUCK_SESSIONS": "many"})
    with pytest.raises(ConfigError, match="ALERT_ABANDONMENT_RATE must be between 0 and 100"):
        Thresholds.from_env({"ALERT_ABANDONMENT_RATE": "150"})


def test_doctor_help_has_examples():
    assert "Examples:" in CliRunner().invoke(cli, ["doctor", "--help"]).output
