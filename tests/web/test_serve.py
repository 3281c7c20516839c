"""`runner serve` as operators run it: a real process, real HTTP, JSON request logs, SIGTERM shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import psycopg
import requests

from runner.locks import WEBHOOK_EVENT_LOCK_CLASS
from tests.conftest import free_port
from tests.payments_support import (
    SERVICE_TOKEN,
    WEBHOOK_SECRET,
    ServeProcess,
    checkout_event,
    first_health_answer,
    new_session,
    sign,
)


def test_serve_answers_logs_json_and_stops_gracefully_on_sigterm(db_url):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SERVICE_TOKEN": SERVICE_TOKEN,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_SECRET_KEY": "sk_test_fake",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "serve",
            "--port",
            str(port),
            "--workers",
            "4",
            "--log-format",
            "json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        health = first_health_answer(base, proc)
        assert health is not None, "runner serve did not start"
        assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok"}
        refused = requests.post(
            base + "/api/payments/webhook",
            data="{}",
            headers={"Stripe-Signature": "t=1,v1=deadbeef"},
            timeout=5,
        )
        assert refused.status_code == 400
        who = requests.get(
            base + "/api/payments/checkout-session",
            headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
            timeout=5,
        )
        assert who.status_code == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    logged = [json.loads(line) for line in stderr.splitlines()]  # --log-format json: every line is JSON
    requests_logged = [line for line in logged if line["event"] == "request"]
    assert [(r["method"], r["path"], r["status"]) for r in requests_logged][-3:] == [
        ("GET", "/healthz", 200),
        ("POST", "/api/payments/webhook", 400),
        ("GET", "/api/payments/checkout-session", 400),
    ]
    assert SERVICE_TOKEN not in stderr and "deadbeef" not in stderr
    assert "shutting down" in stderr


def test_sigterm_lets_a_running_delivery_finish_before_the_process_exits(settings, conn, make_user, tmp_path):
    """Graceful shutdown under load: a delivery still in the database when SIGTERM arrives is answered 200
    and committed; the pool closes; the process exits 0; every line it logged is JSON."""
    server = ServeProcess(settings.with_(log_format="json"), tmp_path / "serve.log", workers=4)
    row = new_session(conn, make_user())
    body = checkout_event("completed", row)
    event_id = json.loads(body)["id"]
    answers = []
    try:
        with psycopg.connect(settings.database_url) as blocker:
            # Hold the event's lock: the delivery waits for it inside record_webhook_event.
            blocker.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (WEBHOOK_EVENT_LOCK_CLASS, event_id)
            )
            sender = threading.Thread(
                target=lambda: answers.append(
                    requests.post(
                        server.url + "/api/payments/webhook", data=body, headers=sign(body), timeout=30
                    )
                )
            )
            sender.start()
            deadline = time.monotonic() + 10
            while not conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                "query LIKE '%%record_webhook_event%%'"
            ).fetchone()[0]:
                assert time.monotonic() < deadline, "the delivery never reached the database"
                time.sleep(0.05)
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert server.proc.poll() is None, "the process exited with a request still running"
        # The blocker's transaction ended: the delivery goes on and is answered.
        sender.join(timeout=30)
    finally:
        status = server.stop()
    assert status == 0, server.log()
    assert len(answers) == 1 and answers[0].status_code == 200, answers
    assert answers[0].json()["outcome"] == "completed"
    assert conn.execute(
        "SELECT status FROM payment_checkout_sessions WHERE id = %s", (row["id"],)
    ).fetchone() == ("completed",)
    lines = [json.loads(line) for line in server.log().splitlines()]  # every line, not only the requests
    assert {
        "event": "log",
        "level": "info",
        "logger": "runner.web.server",
        "message": "received SIGTERM: shutting down (running requests finish first)",
    } in lines
    assert [(r["method"], r["status"]) for r in lines if r["event"] == "request"][-1] == ("POST", 200)


def test_more_keep_alive_connections_than_threads_are_all_served(settings, conn, make_user, tmp_path):
    """6 clients on keep-alive connections, 5 deliveries each, against 2 threads: every delivery is answered
    and processed once (requests wait for a thread; none is dropped, refused or answered twice)."""
    server = ServeProcess(settings, tmp_path / "serve.log", workers=2)
    bodies = [checkout_event("completed", new_session(conn, make_user())) for _ in range(30)]
    statuses = []

    def client(mine):
        with requests.Session() as http:  # one keep-alive connection per client
            for body in mine:
                answer = http.post(
                    server.url + "/api/payments/webhook", data=body, headers=sign(body), timeout=60
                )
                statuses.append((answer.status_code, answer.json().get("outcome")))

    try:
        clients = [threading.Thread(target=client, args=(bodies[k::6],)) for k in range(6)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(timeout=120)
    finally:
        assert server.stop() == 0, server.log()
    assert sorted(statuses) == [(200, "completed")] * 30
    assert conn.execute("SELECT count(*), sum(deliveries) FROM webhook_events").fetchone() == (30, 30)
    assert conn.execute(
        "SELECT count(*) FROM payment_checkout_sessions WHERE status = 'completed'"
    ).fetchone() == (30,)


def test_a_port_in_use_is_one_line_and_a_failed_exit(db_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "DATABASE_URL": db_url, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}
        done = subprocess.run(
            [sys.executable, "-m", "runner", "serve", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    expected = f"Error: runner serve cannot listen on 127.0.0.1:{port}: Address already in use"
    assert done.stderr.strip().splitlines() == [expected], done.stderr
