"""`runner report` in-process: exit codes and exact messages."""

from __future__ import annotations

import json

from click.testing import CliRunner

from runner.cli import cli
from tests.reporting_seed import seed


def run(db_url, *args):
    return CliRunner().invoke(cli, ["--database-url", db_url, "report", *args])


def test_report_list_names_every_report(db_url):
    result = run(db_url, "list")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.output.splitlines()]
    assert "conversion_rate" in names and "weekly_report" in names and len(names) >= 13
    listed = json.loads(run(db_url, "list", "--format", "json").output)
    assert {
        "name": "days",
        "type": "integer",
        "default": "30",
        "min": 1,
        "max": 3650,
        "description": "window: sessions created in the last N days",
    } in next(r["params"] for r in listed if r["name"] == "conversion_rate")


def test_report_in_each_format(db_url, conn):
    seed(conn)
    table = run(db_url, "sessions_by_status", "--param", "days=30")
    assert table.exit_code == 0
    assert table.output.splitlines()[0].split() == ["status", "count", "share"]
    as_csv = run(db_url, "sessions_by_status", "-p", "days=30", "--format", "csv")
    assert as_csv.output.splitlines()[0] == "status,count,share"
    as_json = json.loads(run(db_url, "sessions_by_status", "-p", "days=30", "--format", "json").output)
    assert sum(r["count"] for r in as_json) == sum(
        int(line.split(",")[1]) for line in as_csv.output.splitlines()[1:]
    )
    assert all(isinstance(r["share"], str) for r in as_json)


def test_injection_attempt_is_refused_with_one_line(db_url, conn):
    result = run(db_url, "conversion_rate", "--param", "days=7; DROP TABLE users")
    assert result.exit_code == 2
    assert (
        result.output
        == "Error: report conversion_rate: parameter days must be an integer, got '7; DROP TABLE users'\n"
    )
    assert conn.execute("SELECT to_regclass('users') IS NOT NULL").fetchone()[0]


def test_unknown_parameter_and_malformed_pair(db_url):
    unknown = run(db_url, "weekly_report", "-p", "dayz=3")
    assert unknown.exit_code == 2
    assert unknown.output == "Error: report weekly_report: unknown parameter 'dayz' (its parameters: days)\n"
    malformed = run(db_url, "weekly_report", "-p", "days")
    assert malformed.exit_code == 2
    assert malformed.output == "Error: report weekly_report: --param takes KEY=VALUE, got 'days'\n"


def test_unknown_report(db_url):
    result = run(db_url, "conversion_rat")
    assert result.exit_code == 2
    assert result.output.startswith("Error: no report named 'conversion_rat' (reports: abandonment_age,")


def test_every_report_command_has_help_with_examples(db_url):
    for name in ["list"] + [line.split()[0] for line in run(db_url, "list").output.splitlines()]:
        result = run(db_url, name, "--help")
        assert result.exit_code == 0 and "Examples:" in result.output, name
    assert "Examples:" in run(db_url, "--help").output
