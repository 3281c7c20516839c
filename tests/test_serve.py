"""`runner serve` as operators run it: a real process, real HTTP, JSON request logs, SIGTERM shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import requests

from .payments_support import SERVICE_TOKEN, WEBHOOK_SECRET


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_logs_json_and_stops_gracefully_on_sigterm(db_url):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "SERVICE_TOKEN": SERVICE_TOKEN,
           "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "STRIPE_SECRET_KEY": "sk_test_fake"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "serve", "--port", str(port), "--workers", "4", "--log-format", "json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = requests.get(base + "/healthz", timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "runner serve did not start"
                time.sleep(0.1)
        assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok"}
        refused = requests.post(base + "/api/payments/webhook", data="{}",
                                headers={"Stripe-Signature": "t=1,v1=deadbeef"}, timeout=5)
        assert refused.status_code == 400
        who = requests.get(base + "/api/payments/checkout-session", headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
                           timeout=5)
        assert who.status_code == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    requests_logged = [json.loads(line) for line in stderr.splitlines() if line.startswith('{"event": "request"')]
    assert [(r["method"], r["path"], r["status"]) for r in requests_logged][-3:] == [
        ("GET", "/healthz", 200), ("POST", "/api/payments/webhook", 400),
        ("GET", "/api/payments/checkout-session", 400)]
    assert SERVICE_TOKEN not in stderr and "deadbeef" not in stderr
    assert "shutting down" in stderr
