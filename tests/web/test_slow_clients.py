"""Slow clients against `runner serve` as a real process (issue 14): 200 connections trickling a webhook body
one byte at a time must not hold its worker threads. /healthz and signed webhooks are answered within a
second meanwhile; each slow upload gets 408 once RUNNER_BODY_TIMEOUT has passed, and its socket is closed.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import threading
import time

import psycopg
import requests

from tests.payments_support import ServeProcess, checkout_event, new_session, sign

SLOW_CLIENTS = int(os.environ.get("SLOW_CLIENTS", "200"))
BODY_TIMEOUT = 4.0
TRICKLE_SECONDS = 1.0  # one byte per connection per second


def slow_upload(port: int) -> socket.socket:
    """A connection that sent a webhook's headers announcing 1,000 bytes of body, and none of the body yet."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /api/payments/webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Stripe-Signature: t=1,v1=00\r\nContent-Length: 1000\r\n\r\n"
    )
    return sock


def answer_of(sock: socket.socket) -> tuple[bytes, bool]:
    """(the status line of the answer on `sock`, whether the server then closed the connection)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            return data.split(b"\r\n", 1)[0], True
        if not chunk:
            return data.split(b"\r\n", 1)[0], True
        data += chunk


def test_two_hundred_trickling_uploads_hold_no_thread(settings, conn, make_user, tmp_path):
    server = ServeProcess(settings.with_(body_timeout=BODY_TIMEOUT), tmp_path / "serve.log", workers=4)
    rows = [new_session(conn, make_user()) for _ in range(10)]
    stop = threading.Event()
    socks = [slow_upload(server.port) for _ in range(SLOW_CLIENTS)]
    opened = time.monotonic()

    def trickle():
        while not stop.wait(TRICKLE_SECONDS):
            for sock in socks:
                try:
                    sock.send(b" ")
                except OSError:
                    pass  # answered 408 and closed

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    health_ms, webhook_ms = [], []
    try:
        time.sleep(1.0)  # every slow connection is now inside its body
        with requests.Session() as http:
            for row in rows:
                started = time.perf_counter()
                health = http.get(server.url + "/healthz", timeout=5)
                health_ms.append((time.perf_counter() - started) * 1000)
                assert health.status_code == 200
                body = checkout_event("completed", row)
                started = time.perf_counter()
                delivered = http.post(
                    server.url + "/api/payments/webhook", data=body, headers=sign(body), timeout=5
                )
                webhook_ms.append((time.perf_counter() - started) * 1000)
                assert delivered.status_code == 200, delivered.text
                assert delivered.json()["outcome"] == "completed"
        answered_within = time.monotonic() - opened
        assert answered_within < BODY_TIMEOUT, "the checks ran past the deadline: they proved nothing"
        answers = [answer_of(sock) for sock in socks]
        waited = time.monotonic() - opened
    finally:
        stop.set()
        trickler.join(timeout=10)
        for sock in socks:
            sock.close()
        status = server.stop()
    print(
        f"{SLOW_CLIENTS} slow uploads: /healthz max {max(health_ms):.0f} ms (median "
        f"{statistics.median(health_ms):.0f}), webhook max {max(webhook_ms):.0f} ms (median "
        f"{statistics.median(webhook_ms):.0f}); all answered 408 and closed {waited:.1f} s after opening"
    )
    assert status == 0, server.log()[-3000:]
    assert max(health_ms) < 1000 and max(webhook_ms) < 1000, (health_ms, webhook_ms)
    assert set(answers) == {(b"HTTP/1.1 408 Request Timeout", True)}, set(answers)
    assert waited < BODY_TIMEOUT + 3
    assert conn.execute("SELECT count(*) FROM webhook_events WHERE status = 'processed'").fetchone() == (
        len(rows),
    )
    logged = server.log()
    assert logged.count("POST /api/payments/webhook 408") == SLOW_CLIENTS, logged[-2000:]


def test_slow_headers_are_cut_off_and_a_whole_slow_body_within_the_deadline_is_served(
    settings, conn, make_user, tmp_path
):
    """A client that never finishes its headers is disconnected after the deadline; one whose body arrives
    slowly but whole before it is served as usual."""
    server = ServeProcess(settings.with_(body_timeout=BODY_TIMEOUT), tmp_path / "serve.log", workers=2)
    body = checkout_event("completed", new_session(conn, make_user())).encode()
    headers = sign(body.decode())
    try:
        stalled = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        stalled.sendall(b"POST /api/payments/webhook HTTP/1.1\r\nHost: loc")
        started = time.monotonic()
        status_line, closed = answer_of(stalled)
        cut_after = time.monotonic() - started
        stalled.close()

        slow = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        slow.sendall(
            b"POST /api/payments/webhook HTTP/1.1\r\nHost: localhost\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode()
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        )
        for k in range(4):  # in four parts over 1.5 s
            slow.sendall(body[k * len(body) // 4 : (k + 1) * len(body) // 4])
            time.sleep(0.5)
        answer = b""
        while chunk := slow.recv(65536):
            answer += chunk
        slow.close()
    finally:
        assert server.stop() == 0, server.log()[-3000:]
    assert closed and cut_after < BODY_TIMEOUT + 2, (status_line, cut_after)
    assert status_line in (b"", b"HTTP/1.1 408 Request Timeout"), status_line
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:200]
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["outcome"] == "completed"
    with psycopg.connect(settings.database_url) as check:
        assert check.execute("SELECT count(*) FROM webhook_events").fetchone() == (1,)


def test_body_timeout_zero_is_plain_wsgi_for_a_server_behind_a_buffering_proxy(
    settings, conn, make_user, tmp_path
):
    """RUNNER_BODY_TIMEOUT=0: granian's WSGI interface (no front): deliveries are served as usual, and a body
    that never arrives holds a thread (what the front prevents), so /healthz waits with 1 worker."""
    server = ServeProcess(settings.with_(body_timeout=0), tmp_path / "serve.log", workers=1)
    body = checkout_event("completed", new_session(conn, make_user()))
    try:
        delivered = requests.post(
            server.url + "/api/payments/webhook", data=body, headers=sign(body), timeout=10
        )
        stalled = slow_upload(server.port)
        time.sleep(0.5)
        try:
            requests.get(server.url + "/healthz", timeout=2)
            health_blocked = False
        except requests.Timeout:
            health_blocked = True
        stalled.close()
    finally:
        assert server.stop() == 0, server.log()[-3000:]
    assert delivered.status_code == 200 and delivered.json()["outcome"] == "completed"
    assert health_blocked
