"""The checkout API: who may call it (JWT, service token), what each user may see and do, status codes."""

from __future__ import annotations

import logging
import uuid

import pytest

from tests.payments_support import JWT_SECRET, SERVICE_TOKEN, bearer, new_session, session_row, user_token

CREATE = "/api/payments/create-checkout"
SESSION = "/api/payments/checkout-session"


def test_create_checkout_with_a_user_token(client, conn, make_user, fake_stripe):
    user = make_user("jwt@example.com")
    response = client.post(CREATE, json={"plan": "pro"}, headers=bearer(user_token(user)))
    assert response.status_code == 200
    body = response.json
    assert body["url"].startswith("https://checkout.stripe.test/c/pay/cs_test_") and body["resumed"] is False
    session = body["session"]
    assert (
        session["userId"],
        session["plan"],
        session["amount"],
        session["currency"],
        session["status"],
    ) == (str(user), "pro", "29.99", "usd", "pending")
    assert session["checkoutUrl"] == body["url"] and session["id"] == body["checkoutSessionId"]
    again = client.post(CREATE, json={"plan": "pro"}, headers=bearer(user_token(user)))
    assert again.json["url"] == body["url"] and again.json["resumed"] is True


def test_price_in_the_request_is_ignored(client, conn, make_user, fake_stripe):
    user = make_user()
    client.post(
        CREATE, json={"plan": "basic", "price": "0.01", "amount": 1}, headers=bearer(user_token(user))
    )
    assert fake_stripe.created()[0]["line_items[0][price_data][unit_amount]"] == "999"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-jwt"},
        "expired",
        "wrong secret",
        "no sub",
        "sub not a uuid",
        "alg none",
    ],
)
def test_no_or_bad_credentials_are_401(client, conn, make_user, headers):
    user = make_user()
    tokens = {
        "expired": user_token(user, expires_in=-10),
        "wrong secret": user_token(user, secret="another-secret-another-secret-0123"),
        "no sub": __import__("jwt").encode({"exp": 9999999999}, JWT_SECRET, algorithm="HS256"),
        "sub not a uuid": user_token("alice"),
        "alg none": __import__("jwt").encode({"sub": str(user), "exp": 9999999999}, None, algorithm="none"),
    }
    if isinstance(headers, str):
        headers = bearer(tokens[headers])
    for method, url in (("post", CREATE), ("get", SESSION), ("post", SESSION), ("patch", SESSION)):
        response = getattr(client, method)(url, json={"plan": "pro"}, headers=headers)
        assert response.status_code == 401, (method, url)
        assert response.json["error"]["code"] == "unauthorized"
    assert conn.execute("SELECT count(*) FROM payment_checkout_sessions").fetchone()[0] == 0


def test_a_user_sees_only_their_own_sessions(client, conn, make_user):
    alice, bob = make_user(), make_user()
    alices = new_session(conn, alice)
    headers = bearer(user_token(bob))
    assert (
        client.get(SESSION, query_string={"sessionId": str(alices["id"])}, headers=headers).status_code == 404
    )
    assert client.get(SESSION, query_string={"userId": str(alice)}, headers=headers).status_code == 404
    assert client.get(SESSION, headers=headers).status_code == 404  # bob has none
    patch = client.patch(
        SESSION, json={"sessionId": str(alices["id"]), "status": "canceled"}, headers=headers
    )
    assert patch.status_code == 404
    create = client.post(CREATE, json={"plan": "pro", "userId": str(alice)}, headers=headers)
    assert create.status_code == 404
    assert session_row(conn, alices["id"])["status"] == "pending"

    own = client.get(SESSION, headers=bearer(user_token(alice)))
    assert own.status_code == 200 and own.json["session"]["id"] == str(alices["id"])
    by_id = client.get(
        SESSION, query_string={"sessionId": str(alices["id"])}, headers=bearer(user_token(alice))
    )
    assert by_id.json["session"]["stripeSessionId"] == alices["stripe_session_id"]


def test_service_token_acts_for_a_named_user(client, conn, make_user, fake_stripe):
    user = make_user()
    service = bearer(SERVICE_TOKEN)
    missing = client.post(CREATE, json={"plan": "pro"}, headers=service)
    assert missing.status_code == 400 and "userId is required" in missing.json["error"]["message"]
    created = client.post(CREATE, json={"plan": "pro", "userId": str(user)}, headers=service)
    assert created.status_code == 200
    got = client.get(SESSION, query_string={"userId": str(user)}, headers=service)
    assert got.json["session"]["id"] == created.json["checkoutSessionId"]
    assert client.get(SESSION, headers=service).status_code == 400
    expired = client.patch(
        SESSION, json={"sessionId": created.json["checkoutSessionId"], "status": "expired"}, headers=service
    )
    assert expired.status_code == 200 and expired.json["session"]["status"] == "expired"
    assert expired.json["session"]["checkoutUrl"] is None


def test_patch_allows_only_legal_transitions(client, conn, make_user):
    user = make_user()
    row = new_session(conn, user)
    headers = bearer(user_token(user))
    for status in ("completed", "expired", "pending", 7):
        bad = client.patch(SESSION, json={"sessionId": str(row["id"]), "status": status}, headers=headers)
        assert bad.status_code == 400 and bad.json["error"]["code"] == "invalid_request"
    assert client.patch(SESSION, json={"status": "canceled"}, headers=headers).status_code == 400
    assert (
        client.patch(SESSION, json={"sessionId": "x", "status": "canceled"}, headers=headers).status_code
        == 400
    )
    ok = client.patch(SESSION, json={"sessionId": str(row["id"]), "status": "canceled"}, headers=headers)
    assert ok.status_code == 200 and ok.json["session"]["status"] == "canceled"
    twice = client.patch(SESSION, json={"sessionId": str(row["id"]), "status": "canceled"}, headers=headers)
    assert twice.status_code == 200
    done = new_session(conn, user, plan="basic")
    conn.execute("SELECT complete_checkout_session(%s, %s)", (done["id"], done["stripe_session_id"]))
    late = client.patch(SESSION, json={"sessionId": str(done["id"]), "status": "canceled"}, headers=headers)
    assert late.status_code == 409 and late.json["error"]["code"] == "conflict"
    assert session_row(conn, done["id"])["status"] == "completed"


def test_post_checkout_session_creates_the_row_only(client, conn, make_user, fake_stripe):
    user = make_user()
    response = client.post(SESSION, json={"plan": "enterprise"}, headers=bearer(user_token(user)))
    assert response.status_code == 200
    assert (response.json["session"]["plan"], response.json["session"]["amount"]) == ("enterprise", "99.99")
    assert response.json["session"]["stripeSessionId"] is None and fake_stripe.requests == []


@pytest.mark.parametrize(
    "body, message",
    [
        ({"plan": "gold"}, "unknown plan"),
        ({"plan": None}, "plan must be a plan code"),
        ({}, "plan must be a plan code"),
        ("not json", "must be a JSON object"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_input_is_400_and_changes_nothing(client, conn, make_user, body, message):
    user = make_user()
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, str) else {"json": body}
    response = client.post(CREATE, headers=bearer(user_token(user)), **kwargs)
    assert response.status_code == 400 and message in response.json["error"]["message"]
    assert conn.execute("SELECT count(*) FROM payment_checkout_sessions").fetchone()[0] == 0


def test_stripe_failure_is_502_and_the_row_stays_pending(client, conn, make_user, fake_stripe):
    user = make_user()
    fake_stripe.fail_with = 500
    response = client.post(CREATE, json={"plan": "pro"}, headers=bearer(user_token(user)))
    assert response.status_code == 502
    assert response.json["error"]["code"] == "payment_provider_error"
    assert "still pending" in response.json["error"]["message"]
    assert (
        conn.execute("SELECT status FROM payment_checkout_sessions WHERE user_id = %s", (user,)).fetchone()[0]
        == "pending"
    )
    assert conn.execute("SELECT count(*) FROM error_logs WHERE category = 'stripe'").fetchone()[0] == 1


def test_unknown_route_and_method_are_json(client):
    assert client.get("/api/payments/nope").json["error"]["code"] == "not_found"
    assert client.get("/api/payments/webhook").status_code == 405


def test_healthz_and_dashboard_auth(client, make_user):
    assert client.get("/healthz").json == {"status": "ok", "database": "ok"}
    assert client.get("/dashboard").status_code == 401
    assert client.get("/dashboard", headers=bearer(user_token(make_user()))).status_code == 403


def test_request_log_line_has_no_secrets(client, make_user, caplog):
    token = user_token(make_user())
    with caplog.at_level(logging.INFO, logger="runner.access"):
        client.get(SESSION, query_string={"userId": str(uuid.uuid4())}, headers=bearer(token))
    lines = [r.getMessage() for r in caplog.records if r.name == "runner.access"]
    assert len(lines) == 1 and lines[0].startswith("GET /api/payments/checkout-session 404 ")
    assert token not in caplog.text and "userId" not in caplog.text
