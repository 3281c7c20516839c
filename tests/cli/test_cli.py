"""The command line, in-process with click's CliRunner: exit codes and exact messages."""

from __future__ import annotations

import json
import shutil

import click
import psycopg
from click.testing import CliRunner

from runner.cli import cli
from tests.conftest import REPO, SQL_DIR


def run(*args: str, env: dict | None = None):
    runner = CliRunner()
    return runner.invoke(cli, list(args), env={"DATABASE_URL": None, **(env or {})}, catch_exceptions=False)


def test_apply_check_json_and_noop(empty_db_url):
    pending = run("--database-url", empty_db_url, "--project-dir", str(REPO), "apply", "--check")
    assert pending.exit_code == 3
    assert pending.output.strip().endswith("file(s) pending")

    applied = run("--database-url", empty_db_url, "--project-dir", str(REPO), "apply", "--format", "json")
    assert applied.exit_code == 0, applied.output
    data = json.loads(applied.stdout)
    assert data["dry_run"] is False and len(data["applied"]) >= 13
    assert data["applied"][0]["name"] == "tables/V001__subscription_plans.sql"

    again = run("--database-url", empty_db_url, "--project-dir", str(REPO), "apply")
    assert again.exit_code == 0
    assert again.stdout.startswith("Nothing to apply: up to date")

    check = run("--database-url", empty_db_url, "--project-dir", str(REPO), "apply", "--check")
    assert check.exit_code == 0
    assert check.stdout == "Nothing to apply: up to date.\n"


def test_dry_run_prints_plan_and_rendered_sql(empty_db_url):
    result = run("--database-url", empty_db_url, "--project-dir", str(REPO), "apply", "--dry-run")
    assert result.exit_code == 0
    assert "pending  apply    sql/tables/V003__payment_checkout_sessions.sql" in result.stdout
    assert "CREATE TABLE public.payment_checkout_sessions (" in result.stdout
    assert "{{" not in result.stdout
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regclass('payment_checkout_sessions')").fetchone()[0] is None


def test_drift_exits_4_with_one_line(empty_db_url, tmp_path):
    shutil.copytree(SQL_DIR, tmp_path / "sql")
    assert run("--database-url", empty_db_url, "--project-dir", str(tmp_path), "apply").exit_code == 0
    edited = tmp_path / "sql" / "tables" / "V002__users.sql"
    edited.write_text(edited.read_text().replace("VARCHAR(255) NOT NULL", "TEXT NOT NULL", 1))
    result = run("--database-url", empty_db_url, "--project-dir", str(tmp_path), "apply")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error: sql/tables/V002__users.sql was edited after it was applied")
    assert len(result.stderr.strip().splitlines()) == 1
    status = run("--database-url", empty_db_url, "--project-dir", str(tmp_path), "status", "--format", "json")
    states = {row["name"]: row["state"] for row in json.loads(status.stdout)}
    assert states["tables/V002__users.sql"] == "drifted"


def test_unreachable_database_is_one_clear_line():
    result = run(
        "--database-url",
        "postgresql://nobody:secret@127.0.0.1:1/nowhere",
        "--project-dir",
        str(REPO),
        "apply",
        env={"PGCONNECT_TIMEOUT": "2"},
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: cannot connect to postgresql://nobody:***@127.0.0.1:1/nowhere:")
    assert "secret" not in result.output and "Traceback" not in result.output


def test_malformed_database_url_is_one_clear_line():
    result = run("--database-url", "postgresql://[oops", "--project-dir", str(REPO), "status")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert "Traceback" not in result.output


def test_status_and_verify(db_url):
    status = run("--database-url", db_url, "--project-dir", str(REPO), "status")
    assert status.exit_code == 0
    assert "applied  versioned  sql/tables/V001__subscription_plans.sql" in status.stdout
    verify = run("--database-url", db_url, "--project-dir", str(REPO), "verify")
    assert verify.exit_code == 0, verify.output
    assert "PASS  functions smoke test" in verify.stdout
    assert "FAIL" not in verify.stdout


def test_verify_fails_on_an_empty_database(empty_db_url):
    result = run("--database-url", empty_db_url, "--project-dir", str(REPO), "verify", "--format", "json")
    assert result.exit_code == 1
    checks = json.loads(result.stdout)
    assert {c["name"] for c in checks if not c["ok"]} >= {
        "table payment_checkout_sessions",
        "index idx_payment_checkout_sessions_pending",
    }
    assert result.stderr.startswith("Error: ") and "checks failed" in result.stderr


def test_verify_catches_a_dropped_index(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP INDEX idx_payment_checkout_sessions_email")
    result = run("--database-url", db_url, "--project-dir", str(REPO), "verify")
    assert result.exit_code == 1
    assert "FAIL  index idx_payment_checkout_sessions_email: missing" in result.stdout


def test_compile_one_file_and_unknown_file():
    result = run("--project-dir", str(REPO), "compile", "sql/functions/expire_old_checkout_sessions.sql")
    assert result.exit_code == 0
    assert result.stdout.startswith("-- depends: checkout_session_rules")
    assert "CREATE OR REPLACE FUNCTION public.expire_old_checkout_sessions" in result.stdout
    assert "SET search_path = public, pg_temp" in result.stdout
    missing = run("--project-dir", str(REPO), "compile", "V999__nothing")
    assert missing.exit_code == 1
    assert missing.stderr.startswith("Error: no SQL file named 'V999__nothing'")


def test_bad_project_dir_is_one_line(tmp_path):
    result = run("--project-dir", str(tmp_path), "compile")
    assert result.exit_code == 1
    assert result.stderr == f"Error: --project-dir {tmp_path}: no sql/project.toml there\n"


def test_bad_option_value_is_a_usage_error():
    result = run("apply", "--lock-timeout", "soon")
    assert result.exit_code == 2
    assert "Invalid value for '--lock-timeout'" in result.stderr


def all_commands(group: click.Group, ctx: click.Context, prefix: str = ""):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from all_commands(command, click.Context(command, parent=ctx), f"{prefix}{name} ")


def test_every_command_has_help_with_an_example():
    ctx = click.Context(cli)
    missing = [
        name
        for name, command in all_commands(cli, ctx)
        if "Examples:" not in (command.help or "") or not command.get_short_help_str()
    ]
    assert missing == []
    assert "Examples:" in (cli.help or "")
