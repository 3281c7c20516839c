"""A database that stops answering (SIGSTOP of PostgreSQL: every process frozen, sockets open, as in a stalled
VM, a hung storage or a network partition) while `runner serve` takes webhooks (issue 14). Nothing may wait on
it indefinitely: /healthz answers 503 within 2 s, a webhook 503 within the statement timeout plus a second or
the pool timeout; after SIGCONT the next requests succeed, with or without traffic during the outage. In the
end, Stripe's redelivery of every event without a 2xx processes each exactly once.

A server of its own (stopping the session's shared one would stall every other test).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter

import psutil
import psycopg
import pytest
import requests
from psycopg.conninfo import make_conninfo

from runner import migrate
from tests.payments_support import ServeProcess, checkout_event, new_session, sign, store_webhook_secrets
from tests.web.test_crash_postgres import KillableServer

STATEMENT_TIMEOUT = 3.0
POOL_TIMEOUT = 3.0
STOPPED_SECONDS = 8.0
WEBHOOK = "/api/payments/webhook"


def freeze(server: KillableServer, stop: bool) -> None:
    postmaster = psutil.Process(server.server.get_pid())
    for process in [postmaster, *postmaster.children(recursive=True)]:
        try:
            process.suspend() if stop else process.resume()
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def frozen_world(project, settings, tmp_path):
    """A PostgreSQL of this test's own, applied, with sessions to complete, and `runner serve` on it as a member
    of the application role."""
    server = KillableServer()
    serve = None
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE hung")
        db_url = make_conninfo(server.url, dbname="hung")
        migrate.apply(lambda: psycopg.connect(db_url, autocommit=True), project)
        login = f"t_login_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE {project.settings['app_role']}")
            rows = [
                new_session(
                    conn,
                    conn.execute(
                        "INSERT INTO users (email) VALUES (%s) RETURNING id", (f"hung-{i}@example.com",)
                    ).fetchone()[0],
                )
                for i in range(500)
            ]
        store_webhook_secrets(db_url)  # the database checks each delivery's signature too
        serve = ServeProcess(
            settings.with_(
                database_url=make_conninfo(db_url, user=login),
                pool_max_size=8,
                pool_timeout=POOL_TIMEOUT,
                statement_timeout=STATEMENT_TIMEOUT,
            ),
            tmp_path / "serve.log",
            workers=8,
        )
        yield server, serve, db_url, [checkout_event("completed", row) for row in rows]
    finally:
        freeze(server, stop=False)
        if serve is not None:
            serve.stop()
        server.close()


def test_sigstop_under_load_fails_fast_and_recovers_at_once(frozen_world):
    server, serve, db_url, bodies = frozen_world
    answers: list[tuple[float, float, str, int | str]] = []  # (sent at, seconds, what, status)
    lock = threading.Lock()
    done = threading.Event()
    queue = iter(bodies)

    def record(what: str, call) -> None:
        sent = time.monotonic()
        try:
            status = call().status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        with lock:
            answers.append((sent, time.monotonic() - sent, what, status))

    def deliverer():
        with requests.Session() as http:
            while not done.is_set():
                with lock:
                    body = next(queue, None)
                if body is None:
                    return
                record(
                    json.loads(body)["id"],
                    lambda b=body: http.post(serve.url + WEBHOOK, data=b, headers=sign(b), timeout=30),
                )
                time.sleep(0.2)

    def prober():
        with requests.Session() as http:
            while not done.is_set():
                record("healthz", lambda: http.get(serve.url + "/healthz", timeout=30))
                time.sleep(0.25)

    threads = [threading.Thread(target=deliverer) for _ in range(8)] + [threading.Thread(target=prober)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    stopped_at = time.monotonic()
    freeze(server, stop=True)
    time.sleep(STOPPED_SECONDS)
    freeze(server, stop=False)
    resumed_at = time.monotonic()
    time.sleep(4.0)
    done.set()
    for t in threads:
        t.join(timeout=60)

    during = [a for a in answers if stopped_at + 0.1 < a[0] < resumed_at - 0.1]
    health_during = [a for a in during if a[2] == "healthz"]
    hooks_during = [a for a in during if a[2] != "healthz"]
    after = [a for a in answers if a[0] > resumed_at]
    first_health_ok = min(a[0] + a[1] for a in after if a[2] == "healthz" and a[3] == 200) - resumed_at
    first_hook_ok = min(a[0] + a[1] for a in after if a[2] != "healthz" and a[3] == 200) - resumed_at
    print(
        f"stopped {STOPPED_SECONDS:g} s: /healthz {Counter(a[3] for a in health_during)}, max "
        f"{max(a[1] for a in health_during):.2f} s; webhooks {Counter(a[3] for a in hooks_during)}, max "
        f"{max(a[1] for a in hooks_during):.2f} s; after SIGCONT first /healthz 200 at {first_health_ok:.2f} s, "
        f"first webhook 200 at {first_hook_ok:.2f} s"
    )
    assert health_during and hooks_during
    assert max(a[1] for a in health_during) < 2.0, health_during
    assert {a[3] for a in health_during if a[0] > stopped_at + 2.5 and a[0] + a[1] < resumed_at} == {503}, (
        health_during
    )
    assert {a[3] for a in hooks_during} <= {200, 503}, hooks_during
    assert max(a[1] for a in hooks_during) < STATEMENT_TIMEOUT + 1 + POOL_TIMEOUT + 1, hooks_during
    assert first_health_ok < 1.5 and first_hook_ok < 1.5
    assert "Traceback" not in serve.log(), serve.log()[-3000:]

    # Stripe's redelivery of every event without a 2xx: each processed exactly once.
    acknowledged = {a[2] for a in answers if a[2] != "healthz" and a[3] == 200}
    sent = {a[2] for a in answers if a[2] != "healthz"}
    by_id = {json.loads(b)["id"]: b for b in bodies}
    for event_id in sent:
        if event_id not in acknowledged:
            body = by_id[event_id]
            redelivered = requests.post(serve.url + WEBHOOK, data=body, headers=sign(body), timeout=30)
            assert redelivered.status_code == 200, redelivered.text
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'processed') FROM webhook_events"
        ).fetchone() == (len(sent), len(sent))
        assert conn.execute(
            "SELECT count(*) FROM payment_checkout_sessions WHERE status = 'completed'"
        ).fetchone() == (len(sent),)


def test_after_an_outage_without_traffic_the_next_request_succeeds(frozen_world):
    """Requests during the outage (each a 503), then none for longer than psycopg_pool's doubling reconnect
    delays would wait, then SIGCONT: the very next request is answered 200."""
    server, serve, _, bodies = frozen_world
    freeze(server, stop=True)
    try:
        with requests.Session() as http:
            for body in bodies[:3]:
                assert (
                    http.post(serve.url + WEBHOOK, data=body, headers=sign(body), timeout=30).status_code
                    == 503
                )
            assert http.get(serve.url + "/healthz", timeout=30).status_code == 503
        time.sleep(10.0)
    finally:
        freeze(server, stop=False)
    resumed = time.monotonic()
    with requests.Session() as http:
        health = http.get(serve.url + "/healthz", timeout=30)
        body = bodies[3]
        delivered = http.post(serve.url + WEBHOOK, data=body, headers=sign(body), timeout=30)
    took = time.monotonic() - resumed
    print(
        f"after a 10 s outage without traffic: /healthz {health.status_code}, webhook {delivered.status_code}, "
        f"both within {took:.2f} s of SIGCONT"
    )
    assert health.status_code == 200 and delivered.status_code == 200, (health.text, delivered.text)
    assert took < 2.0


def run_job(url: str, *args: str, env: dict):
    from click.testing import CliRunner

    from runner.cli import cli
    from tests.conftest import REPO

    return CliRunner().invoke(cli, ["--database-url", url, "--project-dir", str(REPO), "job", *args], env=env)


def test_a_job_statement_stuck_on_a_lock_is_cancelled_after_the_job_statement_timeout(conn, db_url):
    """RUNNER_JOB_STATEMENT_TIMEOUT: PostgreSQL cancels the job's statement, the job fails (exit 1, one line,
    recorded failed) instead of waiting for the lock as long as it is held."""
    env = {"RUNNER_JOB_STATEMENT_TIMEOUT": "1", "SMTP_URL": None, "DATABASE_URL": None}
    with psycopg.connect(db_url) as holder:  # a transaction holding every row lock the expire job needs
        holder.execute("LOCK TABLE payment_checkout_sessions IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        result = run_job(db_url, "expire", env=env)
        took = time.monotonic() - started
        holder.rollback()
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: job expire failed") and "statement timeout" in result.output
    assert len(result.output.strip().splitlines()) == 1 and took < 10
    assert conn.execute("SELECT job, outcome FROM job_runs").fetchall() == [("expire", "failed")]


def test_a_bad_job_statement_timeout_is_one_line(db_url):
    from runner.errors import ConfigError

    result = run_job(db_url, "expire", env={"RUNNER_JOB_STATEMENT_TIMEOUT": "soon", "DATABASE_URL": None})
    assert result.exit_code == ConfigError.exit_code
    assert result.output.splitlines() == [
        "Error: RUNNER_JOB_STATEMENT_TIMEOUT must be a number of seconds (0: none), got 'soon'"
    ]


def test_a_statement_over_the_statement_timeout_is_a_503_and_the_event_is_processed_on_redelivery(
    settings, conn, make_user
):
    """RUNNER_STATEMENT_TIMEOUT in the service: a delivery stuck behind a lock is cancelled by PostgreSQL and
    answered 503 (Stripe redelivers), not held for as long as the lock is; the redelivery succeeds."""
    from runner.web.app import create_app

    app = create_app(settings.with_(statement_timeout=1.0))
    body = checkout_event("completed", new_session(conn, make_user()))
    try:
        client = app.test_client()
        with psycopg.connect(settings.database_url) as holder:
            holder.execute("LOCK TABLE payment_checkout_sessions IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            refused = client.post(WEBHOOK, data=body, headers=sign(body))
            took = time.monotonic() - started
            holder.rollback()
        redelivered = client.post(WEBHOOK, data=body, headers=sign(body))
    finally:
        app.extensions["runner"].close()
    assert refused.status_code == 503 and refused.json["error"]["code"] == "database_timeout", refused.json
    assert 0.9 < took < 3.0
    assert redelivered.status_code == 200 and redelivered.json["outcome"] == "completed"
    assert conn.execute("SELECT status FROM webhook_events").fetchall() == [("processed",)]
