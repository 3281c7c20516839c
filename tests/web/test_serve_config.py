"""Careless configuration and open doors (issue 14): short secrets refused at start, DASHBOARD_TOKEN opening
/dashboard only, the dashboard's security headers, /metrics behind METRICS_TOKEN and answered from a
snapshot (one query batch per refresh, however many scrapers)."""

from __future__ import annotations

import threading
import time

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.web.app import create_app
from runner.web.server import MIN_SECRET_BYTES, check_secrets
from tests.conftest import free_port
from tests.payments_support import bearer, new_session, user_token

DASHBOARD_TOKEN = "dashboard-token-for-tests-0123456789abcdef"
METRICS_TOKEN = "metrics-token-for-tests-0123456789abcdef"
SECRETS = ("JWT_SECRET", "SERVICE_TOKEN", "DASHBOARD_TOKEN", "METRICS_TOKEN")


@pytest.mark.parametrize("name", SECRETS)
def test_serve_refuses_a_secret_shorter_than_32_bytes(db_url, name):
    env = {secret: None for secret in SECRETS} | {name: "s" * (MIN_SECRET_BYTES - 1)}
    result = CliRunner().invoke(cli, ["--database-url", db_url, "serve", "--port", str(free_port())], env=env)
    assert result.exit_code == 1, result.output
    assert result.output.splitlines() == [
        f"Error: {name} is 31 bytes: runner serve needs at least 32 (make one with: openssl rand -hex 32)"
    ]


def test_secrets_of_32_bytes_and_multibyte_ones_are_counted_in_bytes(settings):
    check_secrets(settings.with_(jwt_secret="j" * 32, service_token="s" * 32, dashboard_token=None))
    with pytest.raises(Exception, match="SERVICE_TOKEN is 30 bytes"):
        check_secrets(settings.with_(service_token="é" * 15))  # 15 characters, 30 bytes


@pytest.fixture
def guarded_client(settings):
    app = create_app(
        settings.with_(dashboard_token=DASHBOARD_TOKEN, metrics_token=METRICS_TOKEN, metrics_max_age=60)
    )
    try:
        yield app.test_client()
    finally:
        app.extensions["runner"].close()


def test_dashboard_token_opens_the_dashboard_and_nothing_else(guarded_client, make_user):
    page = guarded_client.get("/dashboard", headers=bearer(DASHBOARD_TOKEN))
    assert page.status_code == 200 and page.data.startswith(b"<!doctype html>")
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none';")
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"
    user = make_user()
    for method, path, body in (
        ("GET", f"/api/payments/checkout-session?userId={user}", None),
        ("POST", "/api/payments/create-checkout", {"userId": str(user), "plan": "pro"}),
        ("POST", "/api/payments/checkout-session", {"userId": str(user), "plan": "pro"}),
    ):
        acted = guarded_client.open(path, method=method, json=body, headers=bearer(DASHBOARD_TOKEN))
        assert acted.status_code == 401, (path, acted.json)
    assert guarded_client.get("/dashboard").status_code == 401
    assert guarded_client.get("/dashboard", headers=bearer("x" * 40)).status_code == 401
    assert guarded_client.get("/dashboard", headers=bearer(user_token(user))).status_code == 403


def test_metrics_token_is_required_when_set(guarded_client):
    assert guarded_client.get("/metrics").status_code == 401
    assert guarded_client.get("/metrics", headers=bearer(DASHBOARD_TOKEN)).status_code == 401
    scraped = guarded_client.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert scraped.status_code == 200 and b"checkout_sessions_created" in scraped.data


def test_metrics_are_open_without_a_token(client):
    assert client.get("/metrics").status_code == 200


def test_many_scrapers_cost_one_query_batch_per_refresh(settings, conn, make_user):
    app = create_app(settings.with_(metrics_max_age=2.0))
    client = app.test_client()
    state = app.extensions["runner"]
    try:
        first = client.get("/metrics").data
        taken = time.monotonic()
        bodies, start = [], threading.Barrier(32)

        def scrape():
            start.wait()
            bodies.append(app.test_client().get("/metrics").data)

        scrapers = [threading.Thread(target=scrape) for _ in range(32)]
        for t in scrapers:
            t.start()
        for t in scrapers:
            t.join(timeout=30)
        new_session(conn, make_user())  # a new pending session: visible after the next refresh only
        cached = client.get("/metrics").data
        within = time.monotonic() - taken
        refreshes_within_max_age = state.metrics.refreshes
        time.sleep(2.1)
        fresh = client.get("/metrics").data
    finally:
        state.close()
    assert within < 1.9, "the scrapes outlasted the snapshot's age: they proved nothing"
    assert len(bodies) == 32 and set(bodies) == {first} and refreshes_within_max_age == 1
    assert b'checkout_sessions{plan="pro",status="pending"} 1.0' not in cached + first
    assert b'checkout_sessions{plan="pro",status="pending"} 1.0' in fresh
    assert state.metrics.refreshes == refreshes_within_max_age + 1
