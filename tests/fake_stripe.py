"""A small fake of Stripe's Checkout Sessions API, served over HTTP on loopback so the real `stripe` library
talks to it (StripeClient base_addresses / STRIPE_API_BASE). It keeps Stripe's idempotency-key rule: the
same key with the same parameters returns the first response (a replay, marked `Idempotent-Replayed: true`,
errors included); with other parameters, an error."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

API_KEY = "sk_test_fake"


class FakeStripe:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sessions: dict[str, dict] = {}
        self.idempotency: dict[str, tuple[str, int, dict]] = {}
        self.requests: list[tuple[str, str, dict, dict]] = []  # method, path, params, headers
        self.fail_with: int | None = None  # next create/retrieve answers this HTTP status
        # What the next creates do, one entry each: "500" answers 500 before doing anything (a load balancer
        # or an outage: nothing is saved under the idempotency key, as at Stripe); "slow" does the work and
        # saves it under the key, then answers only after `slow_seconds` (the client has timed out by then);
        # "500-saved" fails after the work began, so Stripe saves the 500 under the key and replays it for
        # 24 hours, answering `Stripe-Should-Retry: false`; "500-saved-quiet" is the same without that header.
        self.create_failures: list[str] = []
        self.slow_seconds = 2.0
        self.delay = 0.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, body: dict, extra: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{uuid.uuid4().hex[:12]}")
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                params = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                self._reply(*fake.handle("POST", urlparse(self.path).path, params, dict(self.headers)))

            def do_GET(self):
                self._reply(*fake.handle("GET", urlparse(self.path).path, {}, dict(self.headers)))

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that timed out: not news
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeStripe:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def created(self) -> list[dict]:
        return [r[2] for r in self.requests if r[0] == "POST"]

    def sessions_created_for(self, client_reference_id: str) -> list[dict]:
        """Every Stripe session this fake created for one checkout session row."""
        return [s for s in self.sessions.values() if s["client_reference_id"] == client_reference_id]

    def handle(self, method: str, path: str, params: dict, headers: dict) -> tuple[int, dict, dict]:
        failure = None
        if method == "POST" and path == "/v1/checkout/sessions":
            with self.lock:
                failure = self.create_failures.pop(0) if self.create_failures else None
        if failure == "500":
            with self.lock:
                self.requests.append((method, path, params, headers))
            return (
                500,
                {"error": {"type": "api_error", "message": "Stripe is having a bad day (before the work)"}},
                {},
            )
        if failure in ("500-saved", "500-saved-quiet"):
            key = headers.get("Idempotency-Key")
            with self.lock:
                self.requests.append((method, path, params, headers))
                if key in self.idempotency:  # a key already spent: its saved answer, as always
                    return self._replay(key, params)
                body = {"error": {"type": "api_error", "message": "Stripe failed while creating the session"}}
                self.idempotency[key] = (params, 500, body)
            return 500, body, {"Stripe-Should-Retry": "false"} if failure == "500-saved" else {}
        status, body, extra = self._handle(method, path, params, headers)
        if failure == "slow":
            time.sleep(self.slow_seconds)
        return status, body, extra

    def _replay(self, key: str, params: dict) -> tuple[int, dict, dict]:
        first_params, status, body = self.idempotency[key]
        if first_params != params:
            return (
                400,
                {
                    "error": {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the "
                        "same parameters they were first used with.",
                    }
                },
                {},
            )
        extra = {"Idempotent-Replayed": "true"}
        if status >= 500:
            extra["Stripe-Should-Retry"] = "false"
        return status, body, extra

    def _handle(self, method: str, path: str, params: dict, headers: dict) -> tuple[int, dict, dict]:
        if headers.get("Authorization") != f"Bearer {API_KEY}":
            return (
                401,
                {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}},
                {},
            )
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.requests.append((method, path, params, headers))
            if self.fail_with:
                status, self.fail_with = self.fail_with, None
                return status, {"error": {"type": "api_error", "message": "Stripe is having a bad day"}}, {}
            if method == "POST" and path == "/v1/checkout/sessions":
                key = headers.get("Idempotency-Key")
                if key in self.idempotency:
                    return self._replay(key, params)
                body = self._create(params)
                if key:
                    self.idempotency[key] = (params, 200, body)
                return 200, body, {}
            if method == "GET" and path.startswith("/v1/checkout/sessions/"):
                session = self.sessions.get(path.rsplit("/", 1)[1])
                if session is None:
                    return (
                        404,
                        {
                            "error": {
                                "type": "invalid_request_error",
                                "code": "resource_missing",
                                "message": "No such checkout.session",
                            }
                        },
                        {},
                    )
                return 200, session, {}
        return (
            404,
            {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL {path}"}},
            {},
        )

    def _create(self, params: dict) -> dict:
        sid = f"cs_test_{uuid.uuid4().hex}"
        session = {
            "id": sid,
            "object": "checkout.session",
            "url": f"https://checkout.stripe.test/c/pay/{sid}",
            "status": "open",
            "payment_status": "unpaid",
            "mode": params.get("mode"),
            "livemode": False,
            "expires_at": int(params["expires_at"]),
            "client_reference_id": params.get("client_reference_id"),
            "customer_email": params.get("customer_email"),
            "customer": None,
            "currency": params.get("line_items[0][price_data][currency]", "usd"),
            "amount_total": int(params.get("line_items[0][price_data][unit_amount]", 0)),
            "metadata": {k[len("metadata[") : -1]: v for k, v in params.items() if k.startswith("metadata[")},
        }
        self.sessions[sid] = session
        return session
