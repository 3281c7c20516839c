"""Fixtures and helpers for the checkout and webhook tests: a fake Stripe server, the service's settings and
app, signed Stripe events, user JWTs. Test modules import the fixtures they use from here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import jwt
import psycopg
import pytest
import requests
import stripe

from runner.settings import Settings
from runner.web.app import create_app
from tests.conftest import free_port
from tests.fake_stripe import API_KEY, FakeStripe

WEBHOOK_SECRET = "whsec_test_current"
OLD_WEBHOOK_SECRET = "whsec_test_previous"
JWT_SECRET = "jwt-secret-for-tests-0123456789abcdef"
# At least 32 bytes: `runner serve` refuses shorter secrets.
SERVICE_TOKEN = "service-token-for-tests-0123456789abcdef"


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    try:
        yield fake
    finally:
        fake.stop()


def store_webhook_secrets(url: str, *secrets: str) -> None:
    """Store signing secrets in the database's webhook_secrets, as the owner (`runner webhook secret set`)."""
    from runner.payments import webhook_secrets

    with psycopg.connect(url, autocommit=True) as conn:
        webhook_secrets.set_secrets(conn, secrets or (WEBHOOK_SECRET, OLD_WEBHOOK_SECRET))


@pytest.fixture
def settings(db_url: str, fake_stripe: FakeStripe) -> Settings:
    # The database checks every delivery's signature too: it holds the same secrets as the service.
    store_webhook_secrets(db_url)
    return Settings(
        database_url=db_url,
        stripe_secret_key=API_KEY,
        stripe_webhook_secrets=(WEBHOOK_SECRET, OLD_WEBHOOK_SECRET),
        stripe_api_base=fake_stripe.url,
        stripe_livemode=False,
        stripe_max_network_retries=0,
        stripe_timeout=5,
        jwt_secret=JWT_SECRET,
        service_token=SERVICE_TOKEN,
        success_url="https://app.example.com/paid?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="https://app.example.com/canceled",
        pool_max_size=20,
        pool_timeout=3,
    )


@pytest.fixture
def app(settings: Settings):
    application = create_app(settings)
    try:
        yield application
    finally:
        application.extensions["runner"].close()


@pytest.fixture
def client(app):
    return app.test_client()


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes Settings.from_env() read `settings` back (for `runner serve` processes)."""
    env = {
        "DATABASE_URL": settings.database_url or "",
        "STRIPE_SECRET_KEY": settings.stripe_secret_key or "",
        "STRIPE_WEBHOOK_SECRET": ",".join(settings.stripe_webhook_secrets),
        "STRIPE_API_BASE": settings.stripe_api_base or "",
        "STRIPE_LIVEMODE": "true" if settings.stripe_livemode else "false",
        "STRIPE_TIMEOUT": str(settings.stripe_timeout),
        "STRIPE_MAX_NETWORK_RETRIES": str(settings.stripe_max_network_retries),
        "STRIPE_WEBHOOK_TOLERANCE": str(settings.webhook_tolerance),
        "JWT_SECRET": settings.jwt_secret or "",
        "JWT_AUDIENCE": settings.jwt_audience or "",
        "SERVICE_TOKEN": settings.service_token or "",
        "CHECKOUT_SUCCESS_URL": settings.success_url,
        "CHECKOUT_CANCEL_URL": settings.cancel_url,
        "RUNNER_POOL_MIN_SIZE": str(settings.pool_min_size),
        "RUNNER_POOL_MAX_SIZE": str(settings.pool_max_size),
        "RUNNER_POOL_TIMEOUT": str(settings.pool_timeout),
        "RUNNER_LOG_FORMAT": settings.log_format,
        "RUNNER_BODY_TIMEOUT": str(settings.body_timeout),
        "RUNNER_STATEMENT_TIMEOUT": str(settings.statement_timeout),
        "CHECKOUT_RATE_LIMIT": str(settings.checkout_rate_limit),
        "CHECKOUT_RATE_WINDOW": str(settings.checkout_rate_window),
        "METRICS_MAX_AGE": str(settings.metrics_max_age),
        "METRICS_TOKEN": settings.metrics_token or "",
        "DASHBOARD_TOKEN": settings.dashboard_token or "",
    }
    assert Settings.from_env(env) == settings, "settings_env must round-trip every field"
    return env


def first_health_answer(url: str, proc: subprocess.Popen, timeout: float = 30) -> requests.Response | None:
    """The first answer of a starting server's /healthz; None if its process exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url + "/healthz", timeout=2)
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.1)


class ServeProcess:
    """`runner serve` as operators run it (granian, its worker process, its pool), on a free loopback port;
    its stderr (the request lines among it) goes to `log_path`."""

    def __init__(self, settings: Settings, log_path: Path, *, workers: int = 16, processes: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, **settings_env(settings)}
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner",
                "--database-url",
                settings.database_url,
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--processes",
                str(processes),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        health = first_health_answer(self.url, self.proc)
        if health is None or health.status_code != 200:
            self.stop()
            raise RuntimeError(f"runner serve did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        """SIGTERM, as operators stop it; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def live_server(settings: Settings, tmp_path: Path) -> Iterator[ServeProcess]:
    """The service behind `runner serve` (the production HTTP server) on loopback, for real HTTP requests."""
    server = ServeProcess(settings, tmp_path / "serve.log")
    try:
        yield server
    finally:
        server.stop()


def user_token(user_id, *, secret: str = JWT_SECRET, expires_in: int = 600, **claims) -> str:
    payload = {
        "sub": str(user_id),
        "exp": int(time.time()) + expires_in,
        "aud": "authenticated",
        "role": "authenticated",
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign(body: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Headers of a delivery signed the way Stripe signs it (the library's own signing helper)."""
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


def checkout_event(
    kind: str,
    row: dict,
    *,
    event_id: str | None = None,
    payment_status: str = "paid",
    amount_total: int | None = None,
    currency: str = "usd",
    livemode: bool = False,
    stripe_session_id: str | None = None,
    customer: str = "cus_test_1",
) -> str:
    """The JSON body of a checkout.session.<kind> event for a payment_checkout_sessions row."""
    if amount_total is None:
        amount_total = int(Decimal(row["plan_price"]) * 100)
    session = {
        "id": stripe_session_id or row["stripe_session_id"] or f"cs_test_{uuid.uuid4().hex}",
        "object": "checkout.session",
        "amount_total": amount_total,
        "currency": currency,
        "customer": customer,
        "client_reference_id": str(row["id"]),
        "livemode": livemode,
        "metadata": {
            "userId": str(row["user_id"]),
            "plan": row["subscription_plan"],
            "checkoutSessionId": str(row["id"]),
        },
        "mode": "subscription",
        "payment_status": payment_status,
        "status": "expired" if kind == "expired" else "complete",
    }
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": int(time.time()),
            "livemode": livemode,
            "type": f"checkout.session.{kind}",
            "data": {"object": session},
        }
    )


def session_row(conn, session_id) -> dict:
    cur = conn.cursor(row_factory=__import__("psycopg").rows.dict_row)
    return cur.execute("SELECT * FROM payment_checkout_sessions WHERE id = %s", (session_id,)).fetchone()


def new_session(conn, user_id, plan: str = "pro", stripe_session_id: str | None = "auto") -> dict:
    """A pending row as create-checkout leaves it (linked to a Stripe session unless stripe_session_id=None)."""
    sid = conn.execute(
        "SELECT get_or_create_checkout_session(%s, %s, %s)",
        (user_id, f"{uuid.uuid4().hex[:8]}@example.com", plan),
    ).fetchone()[0]
    if stripe_session_id is not None:
        stripe_id = f"cs_test_{uuid.uuid4().hex}" if stripe_session_id == "auto" else stripe_session_id
        conn.execute(
            "SELECT link_stripe_session(%s, %s, %s, NULL, 0)",
            (sid, stripe_id, f"https://checkout.stripe.test/c/pay/{stripe_id}"),
        )
    return session_row(conn, sid)
