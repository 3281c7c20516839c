"""The small things a careful user hit (issue 14 point 9): each is one line and a documented exit code, and the
help says what the code does."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.jobs.catalogue import JOBS, TARGET_BATCH_SECONDS


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(
        cli, list(args), env={"DATABASE_URL": None, **(env or {})}, catch_exceptions=False
    )


def test_a_huge_report_interval_is_exit_2_and_one_line(db_url):
    result = invoke(
        "--database-url", db_url, "report", "reminder_candidates", "-p", "min_age=999999999 weeks"
    )
    assert result.exit_code == 2
    assert result.output == (
        "Error: report reminder_candidates: parameter min_age must be at most 36500 days, "
        "got '999999999 weeks'\n"
    )
    ok = invoke("--database-url", db_url, "report", "stuck_sessions", "-p", "min_age=5214 weeks")
    assert ok.exit_code == 0, ok.output  # a century is still a duration the database takes


def test_a_report_on_a_database_never_applied_says_to_run_apply(empty_db_url):
    result = invoke("--database-url", empty_db_url, "report", "sessions_by_status")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: report sessions_by_status: ")
    assert lines[0].endswith(
        "the project is not applied to this database; run `runner apply` (as its owner) "
        "first, or check DATABASE_URL"
    )


def test_checkout_create_with_a_user_id_that_is_not_a_uuid_is_exit_2_naming_the_option(db_url):
    result = invoke(
        "--database-url",
        db_url,
        "checkout",
        "create",
        "--user-id",
        "not-a-uuid",
        "--plan",
        "pro",
        env={"STRIPE_SECRET_KEY": None},
    )
    assert result.exit_code == 2
    assert (
        result.output.splitlines()[-1]
        == "Error: Invalid value for '--user-id': 'not-a-uuid' is not a valid UUID."
    )


@pytest.mark.parametrize(
    "variable, value, args",
    [
        ("PORT", "abc", ["serve"]),
        ("RUNNER_WORKERS", "0", ["serve"]),
        ("RUNNER_LOG_FORMAT", "xml", ["serve"]),
        ("STRIPE_TIMEOUT", "abc", ["serve"]),
        ("RUNNER_POOL_TIMEOUT", "soon", ["serve"]),
        ("STRIPE_LIVEMODE", "maybe", ["serve"]),
        ("ALERT_ERRORS_24H", "many", ["doctor"]),
        ("RUNNER_EMBEDDED", "maybe", ["status"]),
        ("RUNNER_LOCK_TIMEOUT", "later", ["apply"]),
        ("RUNNER_PROCESSES", "0", ["serve"]),
        ("ALERT_WEBHOOK_FAILURES", "-1", ["doctor"]),
        ("SMTP_TIMEOUT", "slow", ["job", "send-email"]),
        ("MAIL_MAX_ATTEMPTS", "x", ["job", "send-email"]),
    ],
)
def test_a_bad_environment_variable_is_one_line_naming_it_and_exit_1(db_url, variable, value, args):
    """Whichever variable it is, and whether click or the settings read it: one `Error:` line, exit 1."""
    url = [] if variable == "RUNNER_EMBEDDED" else ["--database-url", db_url]
    result = invoke(*url, *args, env={variable: value, "SMTP_URL": "smtp://127.0.0.1:1"})
    assert result.exit_code == 1, result.output
    assert len(result.output.splitlines()) == 1 and result.output.startswith("Error: "), result.output
    assert variable in result.output and value in result.output


def test_the_jobs_help_says_what_the_code_does():
    expire = invoke("job", "expire", "--help").output
    assert f"adapt to about {TARGET_BATCH_SECONDS:g} s each" in " ".join(expire.split())
    cleanup = invoke("job", "cleanup", "--help").output
    assert f"about {TARGET_BATCH_SECONDS:g} s each" in " ".join(cleanup.split())
    schedule = invoke("schedule", "--help").output
    assert (
        f"runner schedule --run-now --max-runs {len(JOBS)}      # each of the {len(JOBS)} jobs once"
        in schedule
    )


def test_the_readme_doctor_example_counts_the_files_doctor_counts(conn, project):
    """The `runner doctor` example (docs/operations.md, once the README's) shows the migrations line of a fully
    applied project (it said 26 files when there were 33). A new file under sql/tables or sql/functions updates
    that line too."""
    import re

    from runner.reporting import doctor
    from tests.conftest import REPO

    example = re.search(
        r"PASS  migrations: (\d+) files applied, none pending", (REPO / "docs" / "operations.md").read_text()
    )
    assert example is not None
    check = {c.name: c for c in doctor.run(conn, project)}["migrations"]
    assert check.detail == f"{example[1]} files applied, none pending", (
        f"docs/operations.md's runner doctor example says {example[1]} files; doctor says: {check.detail}"
    )


@pytest.mark.parametrize(
    "line, message",
    [
        ('jobs_role = "checkout_app"', "settings.app_role and settings.jobs_role must differ"),
        (
            'jobs_role = "Checkout Jobs"',
            "settings.jobs_role must be a lower-case SQL identifier, got 'Checkout Jobs'",
        ),
    ],
)
def test_the_jobs_role_is_checked_like_the_others(tmp_path, line, message):
    import shutil

    from runner import project as project_mod
    from runner.errors import ConfigError
    from tests.conftest import SQL_DIR

    shutil.copytree(SQL_DIR, tmp_path / "sql")
    config = tmp_path / "sql" / "project.toml"
    config.write_text(config.read_text().replace('jobs_role = "checkout_jobs"', line))
    with pytest.raises(ConfigError, match=message):
        project_mod.load(tmp_path)
