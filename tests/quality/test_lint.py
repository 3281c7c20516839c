"""`runner lint` (runner/quality/lint.py): squawk on versioned files, plpgsql_check on function bodies when
the server has it, Jinja errors with file and line, acknowledgements only with a reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from runner import project as project_mod
from runner.cli import cli
from runner.errors import LintFailed
from runner.quality import lint
from tests.conftest import REPO, SQL_DIR

try:
    lint.squawk_binary()
except LintFailed as exc:  # pragma: no cover - CI installs the lint extra
    pytest.skip(f"squawk is not installed ({exc})", allow_module_level=True)

BLOCKING_INDEX = """-- A DBA's new index, built the blocking way.
{% import "macros/common.sql" as m %}
SET LOCAL lock_timeout = '5s';
CREATE INDEX idx_payment_checkout_sessions_email_status
  ON {{ m.q("payment_checkout_sessions") }} (email, status);
"""

CONCURRENT_INDEX = """-- runner: no-transaction
{% import "macros/common.sql" as m %}
SET lock_timeout = '5s';
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_payment_checkout_sessions_email_status
  ON {{ m.q("payment_checkout_sessions") }} (email, status);
"""

MISSING_COLUMN = """-- A function whose body names a column the table does not have: PostgreSQL accepts it at CREATE.
{% import "macros/common.sql" as m %}
CREATE OR REPLACE FUNCTION {{ m.q("coupon_of") }}(p_session_id UUID)
RETURNS TEXT
LANGUAGE plpgsql
{{ m.pinned_search_path() }}
AS $$
DECLARE
  v_coupon TEXT;
BEGIN
  SELECT s.coupon_code INTO v_coupon FROM payment_checkout_sessions s WHERE s.id = p_session_id;
  RETURN v_coupon;
END;
$$;
"""


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args), env={"DATABASE_URL": None}, catch_exceptions=False)


@pytest.fixture
def sql_copy(tmp_path: Path) -> Path:
    """A copy of the project to add files to; returns its folder (holding sql/)."""
    shutil.copytree(SQL_DIR, tmp_path / "sql")
    return tmp_path


def add(base: Path, rel: str, text: str) -> None:
    (base / "sql" / rel).write_text(text, encoding="utf-8")


def test_the_project_lints_clean_with_every_acknowledgement_reasoned(project):
    result = lint.run(project, url=None)
    assert result.findings == [], result.to_text()
    assert result.squawked == len(project.versioned())
    assert result.acknowledged and all(
        f.acknowledged and len(f.acknowledged) > 20 for f in result.acknowledged
    )
    assert result.templates >= 60
    assert result.notes == ["plpgsql_check: not run (--no-db): function bodies were not checked"]


def test_an_index_built_without_concurrently_is_flagged(sql_copy):
    add(sql_copy, "tables/V900__email_status_index.sql", BLOCKING_INDEX)
    out = run_cli("--project-dir", str(sql_copy), "lint", "--no-db")
    assert out.exit_code == 1
    assert (
        "squawk        sql/tables/V900__email_status_index.sql:4: require-concurrent-index-creation: "
        "During normal index creation, table updates are blocked"
    ) in out.stdout
    assert out.stderr.startswith("Error: 1 lint finding(s) (squawk): fix them, or acknowledge one with")

    as_json = run_cli("--project-dir", str(sql_copy), "lint", "--no-db", "--format", "json")
    data = json.loads(as_json.stdout)
    assert as_json.exit_code == 1 and data["ok"] is False
    assert [(f["file"], f["line"], f["rule"]) for f in data["findings"]] == [
        ("sql/tables/V900__email_status_index.sql", 4, "require-concurrent-index-creation")
    ]

    add(sql_copy, "tables/V900__email_status_index.sql", CONCURRENT_INDEX)
    fixed = run_cli("--project-dir", str(sql_copy), "lint", "--no-db")
    assert fixed.exit_code == 0, fixed.output
    assert "0 finding(s)" in fixed.stdout


def test_a_rule_is_acknowledged_in_the_file_only_with_a_reason(sql_copy):
    reasoned = (
        "-- lint: ignore require-concurrent-index-creation because the table is empty on every database\n"
    )
    add(sql_copy, "tables/V900__email_status_index.sql", reasoned + BLOCKING_INDEX)
    result = lint.run(project_mod.load(sql_copy), url=None)
    assert result.findings == []
    mine = [f for f in result.acknowledged if f.file == "sql/tables/V900__email_status_index.sql"]
    assert [(f.rule, f.acknowledged) for f in mine] == [
        ("require-concurrent-index-creation", "the table is empty on every database")
    ]

    add(
        sql_copy,
        "tables/V900__email_status_index.sql",
        "-- lint: ignore require-concurrent-index-creation\n" + BLOCKING_INDEX,
    )
    result = lint.run(project_mod.load(sql_copy), url=None)
    assert sorted((f.rule, f.line) for f in result.findings) == [
        ("acknowledgement", 1),
        ("require-concurrent-index-creation", 5),
    ]
    assert "cannot read `-- lint: ignore require-concurrent-index-creation`" in result.to_text()

    add(
        sql_copy,
        "tables/V900__email_status_index.sql",
        "-- squawk-ignore require-concurrent-index-creation\n" + BLOCKING_INDEX,
    )
    result = lint.run(project_mod.load(sql_copy), url=None)
    assert ("acknowledgement", "squawk-ignore has no reason") in [
        (f.rule, f.message) for f in result.findings
    ]


@pytest.mark.parametrize(
    ("rel", "text", "where", "message"),
    [
        (
            "reports/broken.sql",
            "-- report: broken\n-- description: x\n{{ settings.nope }}\n",
            "sql/reports/broken.sql:3",
            "'dict object' has no attribute 'nope'",
        ),
        (
            "tables/V900__broken.sql",
            '-- x\n{% import "macros/common.sql" as m %}\nSELECT 1;\n{% if %}\n',
            "sql/tables/V900__broken.sql:4",
            "Expected an expression",
        ),
        (
            "functions/broken.sql",
            "-- x\n\n\nSELECT {{ m.q('users') }};\n",
            "sql/functions/broken.sql:4",
            "'m' is undefined",
        ),
    ],
)
def test_a_jinja_error_names_file_and_line(sql_copy, rel, text, where, message):
    add(sql_copy, rel, text)
    out = run_cli("--project-dir", str(sql_copy), "lint", "--no-db")
    assert out.exit_code == 1
    lines = [line for line in out.stdout.splitlines() if line.startswith("jinja")]
    assert len(lines) == 1, out.stdout
    assert lines[0].startswith(f"jinja         {where}: template: ")
    assert message in lines[0]


def _server_has_plpgsql_check(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'plpgsql_check'").fetchone()
            is not None
        )


def _scratch_databases(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'runner_lint_%'").fetchone()[
            0
        ]


def test_a_function_naming_a_missing_column_is_flagged_by_plpgsql_check(pg_admin_url, sql_copy):
    if not _server_has_plpgsql_check(pg_admin_url):
        pytest.skip(
            "plpgsql_check is not installed on this server (Debian: postgresql-15-plpgsql-check, "
            "which .ci/run installs for the PostgreSQL 15 run)"
        )
    clean = lint.run(project_mod.load(sql_copy), url=pg_admin_url)
    assert (clean.plpgsql_check, clean.findings) == ("checked", [])
    assert clean.functions >= 20

    add(sql_copy, "functions/coupon_of.sql", MISSING_COLUMN)
    out = run_cli("--database-url", pg_admin_url, "--project-dir", str(sql_copy), "lint")
    assert out.exit_code == 1
    assert (
        "plpgsql_check sql/functions/coupon_of.sql: plpgsql-check: coupon_of(uuid), line 5 of its body: "
        "column s.coupon_code does not exist"
    ) in out.stdout
    assert out.stderr.startswith("Error: 1 lint finding(s) (plpgsql_check)")
    assert _scratch_databases(pg_admin_url) == 0

    add(
        sql_copy,
        "functions/coupon_of.sql",
        "-- lint: ignore plpgsql-check because the coupon column arrives with V100, next release\n"
        + MISSING_COLUMN,
    )
    acknowledged = lint.run(project_mod.load(sql_copy), url=pg_admin_url)
    assert acknowledged.ok
    assert [(f.file, f.acknowledged) for f in acknowledged.acknowledged if f.tool == "plpgsql_check"] == [
        ("sql/functions/coupon_of.sql", "the coupon column arrives with V100, next release")
    ]


def test_without_plpgsql_check_the_output_says_bodies_were_not_checked(pg_admin_url, project):
    if _server_has_plpgsql_check(pg_admin_url):
        pytest.skip("this server has plpgsql_check: the other plpgsql_check test covers it")
    result = lint.run(project, url=pg_admin_url)
    assert result.ok and result.plpgsql_check == "unavailable"
    assert result.notes[0].startswith("plpgsql_check: not available on this server (PostgreSQL ")
    assert "function bodies were NOT checked" in result.notes[0]
    assert result.to_text().endswith("plpgsql_check unavailable")


def test_apply_check_lint_stops_before_anything_on_a_finding(empty_db_url, sql_copy):
    pending = run_cli(
        "--database-url", empty_db_url, "--project-dir", str(REPO), "apply", "--check", "--lint"
    )
    assert pending.exit_code == 3, pending.output
    assert "0 finding(s)" in pending.stderr

    add(sql_copy, "tables/V900__email_status_index.sql", BLOCKING_INDEX)
    out = run_cli("--database-url", empty_db_url, "--project-dir", str(sql_copy), "apply", "--lint")
    assert out.exit_code == 1
    assert "require-concurrent-index-creation" in out.stderr
    assert out.stderr.rstrip().splitlines()[-1].startswith("Error: 1 lint finding(s) (squawk)")
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regclass('payment_checkout_sessions')").fetchone()[0] is None


def test_two_lints_at_once_use_their_own_scratch_databases(pg_admin_url, template_db, project):
    """Each lint's scratch database has its own random name and is dropped: two at once neither collide nor
    leave anything behind (the roles exist already: template_db applied the project to this server)."""
    import threading

    results: list[lint.LintResult] = []

    def one() -> None:
        results.append(lint.run(project, url=pg_admin_url))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 2 and all(r.ok for r in results), [r.to_text() for r in results]
    assert {r.plpgsql_check for r in results} <= {"checked", "unavailable"}
    assert len({r.plpgsql_check for r in results}) == 1
    assert _scratch_databases(pg_admin_url) == 0
