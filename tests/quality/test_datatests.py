"""Data tests (`runner test`, runner/quality/datatests.py): the rules of sql/tests/ and the generic tests of
sql/project.toml pass on a healthy database, and each fails, naming itself, on a row that breaks it."""

from __future__ import annotations

import json
import re
import shutil
import threading

import psycopg
import pytest
from click.testing import CliRunner

from runner import project as project_mod
from runner.cli import cli
from runner.errors import ConfigError, DataTestSelectionError, ProjectError
from runner.quality import datatests
from tests.conftest import REPO, SQL_DIR
from tests.payments_support import checkout_event, new_session, sign
from tests.reporting_seed import seed


def run_cli(*args: str):
    return CliRunner().invoke(cli, list(args), env={"DATABASE_URL": None}, catch_exceptions=False)


def webhook_complete(client, conn, make_user) -> dict:
    """A session completed the way production completes one: a signed Stripe event through the webhook."""
    row = new_session(conn, make_user())
    body = checkout_event("completed", row)
    response = client.post("/api/payments/webhook", data=body, headers=sign(body))
    assert response.status_code == 200 and response.json["outcome"] == "completed", response.json
    return row


@pytest.fixture
def healthy(conn, client, make_user) -> dict:
    """A database with life in it: seeded sessions of every status, webhook completions (with their
    verification emails), archived sessions, folded and unfolded rollup deltas."""
    seed(conn, sessions=200)
    rows = [webhook_complete(client, conn, make_user) for _ in range(3)]
    conn.execute("SELECT fold_checkout_session_rollup()")
    assert conn.execute("SELECT archive_completed_checkout_sessions(1000, 5)").fetchone()[0] > 0
    webhook_complete(client, conn, make_user)  # a delta left unfolded
    conn.execute(
        "UPDATE email_outbox SET status = 'sent', sent_at = now(), attempts = 1 WHERE dedupe_key = %s",
        (f"verification:{rows[0]['id']}",),
    )
    return {"completed": rows}


def names(results) -> list[str]:
    return [r.name for r in results if not r.passed]


def test_every_rule_passes_on_a_healthy_database(conn, project, healthy):
    results = datatests.run(conn, project)
    assert len(results) == len(datatests.load(project)) >= 11
    assert names(results) == [], [r.as_dict() for r in results if not r.passed]
    assert all(r.failures == 0 and r.sample == [] and r.error is None for r in results)


# One row per rule: SQL that breaks it on the healthy database (%(session)s: a session completed by a
# Stripe event, %(user)s: its user).
BREAKS = {
    "completed_sessions_activated_subscription": "UPDATE users SET subscription_status = 'inactive' WHERE id = %(user)s",
    "archived_sessions_completed": "UPDATE payment_checkout_sessions_archive SET completed_at = NULL, status = 'expired'"
    " WHERE id = (SELECT min(id::text)::uuid FROM payment_checkout_sessions_archive)",
    "archived_sessions_not_live": "INSERT INTO payment_checkout_sessions_archive (id, user_id, email, subscription_plan, plan_price,"
    " payment_provider, status, created_at, expires_at, completed_at) SELECT id, user_id, email,"
    " subscription_plan, plan_price, payment_provider, status, created_at, expires_at, completed_at"
    " FROM payment_checkout_sessions WHERE id = %(session)s",
    "stripe_completed_sessions_stay_completed": "UPDATE webhook_events SET checkout_session_id = (SELECT id FROM payment_checkout_sessions"
    " WHERE status = 'pending' LIMIT 1) WHERE checkout_session_id = %(session)s",
    "rollup_matches_sessions": "INSERT INTO checkout_session_rollup_delta SELECT checkout_rollup_bucket(now()), 'pro', 'pending',"
    " 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0",
    "verification_email_queued": "DELETE FROM email_outbox WHERE checkout_session_id = %(session)s",
    "plan_catalogue_matches_project": "UPDATE subscription_plans SET price = 1.99 WHERE code = 'pro'",
    "payment_checkout_sessions.payment_provider.accepted_values": "UPDATE payment_checkout_sessions SET payment_provider = 'paypal' WHERE id = %(session)s",
    "payment_checkout_sessions_archive.stripe_session_id.unique": "UPDATE payment_checkout_sessions_archive SET stripe_session_id = 'cs_twice'"
    " WHERE id IN (SELECT id FROM payment_checkout_sessions_archive ORDER BY id LIMIT 2)",
    "payment_checkout_sessions_archive.subscription_plan.relationships": "UPDATE payment_checkout_sessions_archive SET subscription_plan = 'gold'"
    " WHERE id = (SELECT min(id::text)::uuid FROM payment_checkout_sessions_archive)",
    "email_outbox.sent_when_sent": "UPDATE email_outbox SET sent_at = NULL WHERE status = 'sent'",
    "stripe_session_history_complete": "DELETE FROM payment_checkout_stripe_sessions WHERE stripe_session_id = (SELECT min(stripe_session_id)"
    " FROM payment_checkout_sessions)",
    "deleted_users_data_left": "INSERT INTO payment_checkout_stripe_sessions (stripe_session_id, checkout_session_id, user_id)"
    " VALUES ('cs_orphan', gen_random_uuid(), gen_random_uuid())",
}


@pytest.mark.parametrize("rule", sorted(BREAKS))
def test_a_row_breaking_a_rule_fails_it_by_name(conn, project, healthy, db_url, rule):
    session = healthy["completed"][0]
    conn.execute(BREAKS[rule], {"session": session["id"], "user": session["user_id"]})

    results = datatests.run(conn, project)
    assert names(results) == [rule]
    failed = next(r for r in results if r.name == rule)
    assert failed.failures >= 1 and 1 <= len(failed.sample) <= 5 and failed.error is None

    out = run_cli("--database-url", db_url, "--project-dir", str(REPO), "test")
    assert out.exit_code == 1
    assert f"FAIL  {rule}: {failed.failures} row" in out.stdout
    assert out.stderr.startswith(f"Error: 1 of {len(results)} data tests failed: {rule}")


def test_cli_passes_lists_selects_and_speaks_json(db_url, conn, healthy):
    ok = run_cli("--database-url", db_url, "--project-dir", str(REPO), "test")
    assert ok.exit_code == 0, ok.output
    assert "PASS  rollup_matches_sessions" in ok.stdout
    assert ok.stdout.rstrip().splitlines()[-1].endswith("passed, 0 failed")

    conn.execute(BREAKS["plan_catalogue_matches_project"])
    out = run_cli(
        "--database-url",
        db_url,
        "--project-dir",
        str(REPO),
        "test",
        "--format",
        "json",
        "--select",
        "plan_*",
        "--select",
        "email_outbox",
    )
    assert out.exit_code == 1
    data = json.loads(out.stdout)
    assert [d["name"] for d in data] == ["plan_catalogue_matches_project", "email_outbox.sent_when_sent"]
    assert data[0]["passed"] is False and data[0]["failures"] == 1
    assert data[0]["sample"] == [
        {
            "code": "pro",
            "project_price": "29.99",
            "table_price": "1.99",
            "project_active": True,
            "table_active": True,
        }
    ]

    listed = run_cli("--project-dir", str(REPO), "test", "--list")
    assert listed.exit_code == 0
    assert re.search(
        r"^verification_email_queued +Every session a Stripe event completed", listed.stdout, re.MULTILINE
    )

    unknown = run_cli("--database-url", db_url, "--project-dir", str(REPO), "test", "--select", "nope")
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith("Error: no data test matches 'nope'")


def test_a_query_that_fails_is_reported_and_the_others_still_run(conn, project, tmp_path):
    shutil.copytree(SQL_DIR, tmp_path / "sql")
    (tmp_path / "sql" / "tests" / "aaa_broken.sql").write_text(
        "-- A rule whose query names a missing table\nSELECT id FROM no_such_table\n"
    )
    results = datatests.run(conn, project_mod.load(tmp_path))
    broken = results[0]
    assert (broken.name, broken.passed) == ("aaa_broken", False)
    assert broken.error.startswith('relation "no_such_table" does not exist [SQLSTATE 42P01]')
    assert all(r.passed for r in results[1:])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT 1 WHERE false\n", "sql/tests/bad.sql: the first line must be `-- <the rule, in one line>`"),
        (
            "-- Two queries\nSELECT 1 WHERE false;\nSELECT 2 WHERE false;\n",
            "sql/tests/bad.sql: one query only",
        ),
        ("-- Undefined\nSELECT {{ nope }}\n", "sql/tests/bad.sql: 'nope' is undefined"),
    ],
)
def test_a_malformed_rule_file_is_one_clear_error(tmp_path, text, message):
    shutil.copytree(SQL_DIR, tmp_path / "sql")
    (tmp_path / "sql" / "tests" / "bad.sql").write_text(text)
    with pytest.raises(ProjectError) as caught:
        datatests.load(project_mod.load(tmp_path))
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('[tests.users]\nunique = "email"\n', "unique must be a list of column names"),
        ('[tests.users]\nsorted = ["email"]\n', "unknown test 'sorted'"),
        (
            '[tests.users]\nnot_null = ["Email; DROP"]\n',
            "column 'Email; DROP' must be a lower-case SQL identifier",
        ),
        ('[tests.users]\nrelationships.subscription_plan = "plans"\n', 'must be "<table>.<column>"'),
        ('[tests.users]\naccepted_values.email = "settings.nope"\n', "'settings.nope' is undefined"),
    ],
)
def test_a_malformed_generic_test_is_one_clear_error(tmp_path, section, message):
    shutil.copytree(SQL_DIR, tmp_path / "sql")
    config = tmp_path / "sql" / "project.toml"
    config.write_text(config.read_text().split("\n[tests.")[0] + "\n" + section)
    with pytest.raises((ConfigError, ProjectError)) as caught:
        datatests.load(project_mod.load(tmp_path))
    assert str(caught.value).startswith("sql/project.toml [tests.users]")
    assert message in str(caught.value)


def test_generic_tests_render_through_the_project_jinja(tmp_path, conn, make_user):
    shutil.copytree(SQL_DIR, tmp_path / "sql")
    config = tmp_path / "sql" / "project.toml"
    config.write_text(
        config.read_text().replace('schema = "public"', 'schema = "public"\nmin_email = 6')
        + """
[tests.users]
unique = ["email", "email, subscription_status"]
not_null = ["subscription_plan"]
accepted_values.subscription_plan = "plans | map(attribute='code') | list"
expression.email_long_enough = "length(email) >= {{ settings.min_email }}"
"""
    )
    project = project_mod.load(tmp_path)
    tests = {t.name: t for t in datatests.generic(project) if t.name.startswith("users.")}
    assert "length(email) >= 6" in tests["users.email_long_enough"].sql
    assert "'basic', 'pro', 'enterprise'" in tests["users.subscription_plan.accepted_values"].sql
    make_user("a@b.c")
    make_user("a@b.c")
    results = {r.name: r for r in datatests.run(conn, project, select="users")}
    assert results["users.email.unique"].sample == [{"email": "a@b.c", "occurrences": 2}]
    assert results["users.email+subscription_status.unique"].failures == 1
    assert results["users.subscription_plan.not_null"].failures == 2
    assert results["users.email_long_enough"].failures == 2
    assert results["users.subscription_plan.accepted_values"].passed


def test_selection_by_name_pattern_and_table(project):
    tests = datatests.load(project)
    assert [t.name for t in datatests.select_tests(tests, "archived_*")] == [
        "archived_sessions_completed",
        "archived_sessions_not_live",
    ]
    assert {t.kind for t in datatests.select_tests(tests, "payment_checkout_sessions_archive")} == {
        "unique",
        "relationships",
    }
    with pytest.raises(DataTestSelectionError):
        datatests.select_tests(tests, "archived")


def test_two_runs_at_once_beside_a_writer_both_pass(db_url, project, conn, healthy, make_user):
    """Read-only and one transaction per rule: concurrent runs and writes neither block nor break them."""
    outcomes: list[list[str]] = []
    stop = threading.Event()

    def check():
        with psycopg.connect(db_url, autocommit=True) as own:
            outcomes.append(names(datatests.run(own, project)))

    def write():
        with psycopg.connect(db_url, autocommit=True) as own:
            while not stop.is_set():
                user = own.execute(
                    "INSERT INTO users (email) VALUES ('w@example.com') RETURNING id"
                ).fetchone()[0]
                own.execute("SELECT get_or_create_checkout_session(%s, 'w@example.com', 'basic')", (user,))

    writer = threading.Thread(target=write)
    writer.start()
    runs = [threading.Thread(target=check) for _ in range(2)]
    try:
        for t in runs:
            t.start()
        for t in runs:
            t.join(60)
    finally:
        stop.set()
        writer.join(10)
    assert outcomes == [[], []]


def test_the_demo_quarter_keeps_every_rule(conn, project):
    """`runner demo && runner test`: the synthetic quarter a DBA first meets breaks no rule of the schema."""
    from runner.quality import demo

    demo.fill(conn, seed=2, sessions=2_000)
    results = datatests.run(conn, project)
    assert names(results) == [], [r.as_dict() for r in results if not r.passed]
    assert conn.execute("SELECT count(*) FROM webhook_events WHERE outcome = 'completed'").fetchone()[0] > 100
