"""`runner demo`: a synthetic quarter that the reports, the doctor and the data tests find realistic,
the same for a seed, and never written into a database the user did not mean."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.quality import demo
from runner.reporting import dashboard, doctor, reports

NOW = "2025-06-01T12:00:00Z"
# Every generated column except those the clock fills as the rows are written (updated_at, linked_at).
DIGESTS = {
    "users": "id, email, subscription_status, subscription_plan, stripe_customer_id, subscribed_at, created_at",
    "payment_checkout_sessions": "id, user_id, email, subscription_plan, plan_price, status, created_at, "
    "expires_at, completed_at, attempts, stripe_session_id, checkout_url",
    "webhook_events": "id, stripe_event_id, topic, payload, status, outcome, deliveries, created_at, "
    "processed_at, checkout_session_id",
    "email_outbox": "id, kind, dedupe_key, recipient, context, status, attempts, last_error, created_at, sent_at",
    "error_logs": "id, category, message, context, created_at",
    "job_runs": "id, job, started_at, finished_at, rows, batches, outcome, error, details, client",
}


def digest(conn: psycopg.Connection) -> dict[str, tuple[int, str]]:
    return {
        table: conn.execute(
            f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
            f"FROM (SELECT {columns} FROM {table}) t"
        ).fetchone()
        for table, columns in DIGESTS.items()
    }


def test_same_seed_same_data_other_seed_other_data(conn, make_database, template_db):
    demo.fill(conn, seed=3, sessions=1_500, now=NOW)
    first = digest(conn)
    with (
        psycopg.connect(make_database(template_db), autocommit=True) as again,
        psycopg.connect(make_database(template_db), autocommit=True) as other,
    ):
        demo.fill(again, seed=3, sessions=1_500, now=NOW)
        demo.fill(other, seed=4, sessions=1_500, now=NOW)
        assert digest(again) == first
        different = digest(other)
    assert all(n > 0 for n, _ in first.values()), first
    assert all(
        different[t][1] != first[t][1] for t in ("users", "payment_checkout_sessions", "webhook_events")
    )


def test_a_quarter_that_reports_and_doctor_read(conn, project):
    result = demo.fill(conn, seed=1, sessions=3_000)
    assert result.sessions == 3_000 and set(result.by_status) == {
        "pending",
        "completed",
        "expired",
        "canceled",
        "failed",
    }
    span = conn.execute(
        "SELECT now() - min(created_at), now() - max(created_at) FROM payment_checkout_sessions"
    ).fetchone()
    assert 80 <= span[0].days <= 90 and span[1].total_seconds() < 86400

    def report(name, **params):
        return reports.run(conn, project, name, {k: str(v) for k, v in params.items()}).records()

    rate = report("conversion_rate", days=30)[0]
    assert rate["sessions"] > 500 and 20 < float(rate["conversion_rate"]) < 50
    assert {r["subscription_plan"] for r in report("abandonment_by_plan", days=90)} == {
        "basic",
        "pro",
        "enterprise",
    }
    assert report("retry_stats", days=90)[0]["retried_sessions"] > 0
    assert {r["category"] for r in report("error_summary", days=90)} == {"stripe", "webhook", "email"}
    assert {r["job"] for r in report("job_status")} == {"expire", "remind", "cleanup", "send-email", "rollup"}
    hooks = {r["status"]: r["events"] for r in report("webhook_outcomes", hours=24 * 90)}
    assert hooks["processed"] > 1_000 and hooks["ignored"] > 0 and hooks["rejected"] > 0
    assert report("recent_webhooks", topic="checkout.session.expired")
    # Every completed session has its event and its verification email, as the webhook leaves them.
    assert (
        conn.execute(
            """SELECT count(*) FROM payment_checkout_sessions s
            WHERE s.status = 'completed'
              AND (NOT EXISTS (SELECT 1 FROM email_outbox o WHERE o.dedupe_key = 'verification:' || s.id)
                   OR NOT EXISTS (SELECT 1 FROM webhook_events w WHERE w.checkout_session_id = s.id
                                     AND w.outcome = 'completed'))"""
        ).fetchone()[0]
        == 0
    )
    checks = {c.name: c.level for c in doctor.run(conn, project)}
    assert "fail" not in checks.values(), checks
    assert all(
        checks[f"job {job}"] == "pass" for job in ("expire", "remind", "cleanup", "send-email", "rollup")
    )
    assert checks["expiry"] == checks["rollup"] == checks["webhooks"] == "pass"
    html = dashboard.render(conn, project)  # 30 days of columns, every plan, every job
    assert (
        html.count('class="mark bar"') > 30
        and "no sessions yet" not in html
        and "no job has run yet" not in html
    )


def test_data_tests_pass_on_the_demo(conn, project):
    datatests = pytest.importorskip("runner.quality.datatests")
    demo.fill(conn, seed=5, sessions=2_000)
    failed = [
        (r.name, r.failures, r.error, r.sample[:1]) for r in datatests.run(conn, project) if not r.passed
    ]
    assert failed == []


def test_cli_refuses_a_database_url_without_yes(db_url, conn):
    result = CliRunner().invoke(cli, ["--database-url", db_url, "demo"])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: runner demo writes synthetic customers and payments, and DATABASE_URL"
    )
    assert "pass --yes" in result.stderr
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_cli_fills_with_yes_then_refuses_a_filled_database_until_reset(db_url, conn):
    runner = CliRunner()
    first = runner.invoke(
        cli, ["--database-url", db_url, "demo", "--yes", "--sessions", "800", "--seed", "2"]
    )
    assert first.exit_code == 0, first.output
    assert "sessions 800/800" in first.stderr and "job runs:" in first.stderr  # progress on stderr
    assert (
        first.stdout.startswith("Demo data (seed 2): ")
        and "800 checkout sessions over 90 days" in first.stdout
    )
    assert conn.execute("SELECT count(*) FROM payment_checkout_sessions").fetchone()[0] == 800

    again = runner.invoke(cli, ["--database-url", db_url, "demo", "--yes", "--sessions", "800"])
    assert again.exit_code == 1
    assert "Error: the database is not empty (" in again.stderr and "runner demo --reset" in again.stderr

    reset = runner.invoke(
        cli, ["--database-url", db_url, "demo", "--yes", "--reset", "--sessions", "500", "--format", "json"]
    )
    assert reset.exit_code == 0, reset.output
    assert '"sessions": 500' in reset.stdout
    assert conn.execute("SELECT count(*) FROM payment_checkout_sessions").fetchone()[0] == 500
    # the rollup followed the reset: the reports' counts are the table's
    assert conn.execute("SELECT sum(sessions) FROM checkout_session_totals()").fetchone()[0] == 500


def test_two_demos_at_once_fill_once(db_url):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from runner.errors import LockTimeout

    barrier = Barrier(2)

    def one(seed: int):
        with psycopg.connect(db_url, autocommit=True) as conn:
            barrier.wait()
            try:
                return demo.fill(conn, seed=seed, sessions=1_500)
            except (LockTimeout, demo.DemoRefused) as exc:
                return exc

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(one, (1, 2)))
    done = [o for o in outcomes if isinstance(o, demo.DemoResult)]
    refused = [o for o in outcomes if not isinstance(o, demo.DemoResult)]
    assert len(done) == 1 and len(refused) == 1, outcomes
    assert "another runner demo holds the lock" in str(refused[0]) or "not empty" in str(refused[0])
    with psycopg.connect(db_url) as conn:  # only the winner's rows: one seed's users, no mix
        assert conn.execute("SELECT count(*) FROM payment_checkout_sessions").fetchone()[0] == 1_500
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == done[0].users


def test_check_target():
    demo.check_target(embedded=True, yes=False, where="")
    demo.check_target(embedded=False, yes=True, where="DATABASE_URL x")
    with pytest.raises(demo.DemoRefused, match="pass --yes"):
        demo.check_target(embedded=False, yes=False, where="DATABASE_URL x")


def test_help_has_examples():
    result = CliRunner().invoke(cli, ["demo", "--help"])
    assert result.exit_code == 0 and "Examples:" in result.output and "--seed" in result.output
