"""Fuzz every HTTP endpoint with random and hostile input: huge, empty, wrong types, odd Unicode (NUL, lone
surrogates, RTL, emoji), deeply nested JSON, wrong content types, absurd numbers, CR/LF in header values.

While the database is up the service never answers 5xx (a 502 when the fake Stripe is told to fail aside),
every 4xx is a JSON error, and no response body or log line carries a traceback or a secret. Example
counts are small by default; RELIABILITY_SCALE=N runs N times as many (docs/reliability.md).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import uuid

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from psycopg.conninfo import make_conninfo

from runner.settings import Settings
from tests.fake_stripe import API_KEY
from tests.payments_support import (
    JWT_SECRET,
    OLD_WEBHOOK_SECRET,
    SERVICE_TOKEN,
    WEBHOOK_SECRET,
    bearer,
    checkout_event,
    new_session,
    sign,
    store_webhook_secrets,
    user_token,
)
from tests.reliability_support import DB_PASSWORD, budget, deeply_nested, json_values, leaks, nasty_text

CREATE = "/api/payments/create-checkout"
SESSION = "/api/payments/checkout-session"
WEBHOOK = "/api/payments/webhook"
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) [a-z_.]+: ")
ROUTES = [
    ("POST", CREATE),
    ("GET", SESSION),
    ("POST", SESSION),
    ("PATCH", SESSION),
    ("POST", WEBHOOK),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/dashboard"),
]


@pytest.fixture
def settings_with_password(db_url, fake_stripe) -> Settings:
    store_webhook_secrets(db_url)
    return Settings(
        database_url=make_conninfo(db_url, password=DB_PASSWORD),
        stripe_secret_key=API_KEY,
        stripe_webhook_secrets=(WEBHOOK_SECRET, OLD_WEBHOOK_SECRET),
        stripe_api_base=fake_stripe.url,
        stripe_max_network_retries=0,
        stripe_timeout=5,
        jwt_secret=JWT_SECRET,
        service_token=SERVICE_TOKEN,
        pool_max_size=4,
        pool_timeout=10,
    )


@pytest.fixture
def settings(settings_with_password):  # the app fixture of payments_support uses this one
    return settings_with_password


@pytest.fixture
def world(conn, make_user):
    """Two users, one with a pending linked session: ids the fuzzer mixes into its input."""
    alice, bob = make_user("alice@example.com"), make_user("bob@example.com")
    row = new_session(conn, alice)
    return {"alice": alice, "bob": bob, "row": row}


def latin1(text: str) -> str:
    """A header value as a WSGI server hands it over: the raw bytes decoded as latin-1."""
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


def check(response, caplog, *, stripe_failing: bool = False) -> None:
    """The contract of every answer, and of every log line written while producing it."""
    status = response.status_code
    body = response.get_data(as_text=False).decode("utf-8", "replace")
    assert status < 500 or (status == 502 and stripe_failing), (status, body[:500])
    if 400 <= status < 500:
        error = json.loads(body)["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str), body[:500]
    assert not leaks(body), leaks(body)
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()  # a logged exception is a traceback
        assert not leaks(record.getMessage()), record.getMessage()[:500]
    caplog.clear()


def field_value(world):
    ids = [str(world["alice"]), str(world["bob"]), str(world["row"]["id"]), str(uuid.uuid4())]
    return st.one_of(
        st.sampled_from(["pro", "basic", "enterprise", "canceled", "expired", "failed", *ids]), json_values
    )


def body_strategy(world):
    fields = st.fixed_dictionaries(
        {}, optional={k: field_value(world) for k in ("plan", "userId", "sessionId", "status", "price")}
    )
    as_json = st.tuples(st.one_of(fields, json_values), st.booleans()).map(
        lambda v: json.dumps(v[0], ensure_ascii=v[1]).encode("utf-8", "surrogatepass")
    )
    return st.one_of(
        as_json,
        st.binary(max_size=64),
        st.sampled_from(
            [
                b"",
                b"null",
                b"{",
                b'{"plan": "pro"',
                b"\xff\xfe{\x00}",
                b'{"plan": 1e999999}',
                b'{"userId": 1' + b"0" * 5000 + b"}",
                b'{"plan": NaN}',
                b'{"plan": "pro", "plan": []}',
                deeply_nested(200).encode(),
                deeply_nested(5000).encode(),
                b"[" * 100_000,
                b'{"plan": "' + b"p" * (2 * 1024 * 1024) + b'"}',
            ]
        ),
    )


CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-16",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=zz",
    "application/xml",
    "application/json; charset=\u202e",
    "*/*",
]


def auth_header(world, choice: str, garbage: str) -> dict[str, str]:
    tokens = {
        "user": user_token(world["alice"]),
        "stranger": user_token(uuid.uuid4()),
        "service": SERVICE_TOKEN,
        "expired": user_token(world["alice"], expires_in=-60),
        "forged": user_token(world["alice"], secret="x" * 40),
    }
    if choice == "none":
        return {}
    if choice == "garbage":
        return {"Authorization": latin1(garbage)}
    if choice == "bearer garbage":
        return {"Authorization": "Bearer " + latin1(garbage)}
    return bearer(tokens[choice])


AUTH = st.sampled_from(
    ["none", "garbage", "bearer garbage", "user", "stranger", "service", "expired", "forged"]
)
NO_NEWLINE = nasty_text.map(lambda s: s.replace("\r", "").replace("\n", ""))


@budget(120)
@given(data=st.data())
def test_api_endpoints_never_5xx_nor_leak(client, world, caplog, data):
    caplog.set_level(logging.DEBUG)
    method, path = data.draw(st.sampled_from(ROUTES), label="route")
    headers = auth_header(world, data.draw(AUTH, label="auth"), data.draw(NO_NEWLINE, label="garbage"))
    content_type = data.draw(st.sampled_from(CONTENT_TYPES), label="content type")
    if content_type:
        headers["Content-Type"] = content_type
    if data.draw(st.booleans(), label="extra header"):
        headers[data.draw(st.sampled_from(["Stripe-Signature", "X-Forwarded-For", "Accept", "Cookie"]))] = (
            latin1(data.draw(NO_NEWLINE, label="extra value"))
        )
    query = data.draw(
        st.dictionaries(
            st.sampled_from(["sessionId", "userId", "plan", "x"]),
            field_value(world).map(lambda v: v if isinstance(v, str) else json.dumps(v)),
            max_size=3,
        ),
        label="query",
    )
    body = data.draw(body_strategy(world), label="body") if method != "GET" else None
    response = client.open(
        path,
        method=method,
        headers=headers,
        data=body,
        query_string={k: v.encode("utf-8", "surrogatepass") for k, v in query.items()},
    )
    check(response, caplog)


def event_strategy(world):
    row = world["row"]
    right = {
        "id": row["stripe_session_id"],
        "object": "checkout.session",
        "amount_total": 2999,
        "currency": "usd",
        "payment_status": "paid",
        "customer": "cus_fuzz",
        "client_reference_id": str(row["id"]),
        "metadata": {"checkoutSessionId": str(row["id"]), "userId": str(row["user_id"])},
    }
    session = st.dictionaries(st.sampled_from(sorted(right)), json_values, max_size=4).map(
        lambda wrong: {**right, **wrong}
    )
    obj = st.one_of(session, session, json_values)
    topic = st.one_of(
        st.sampled_from(
            [
                "checkout.session.completed",
                "checkout.session.expired",
                "checkout.session.async_payment_succeeded",
                "checkout.session.async_payment_failed",
                "invoice.paid",
            ]
        ),
        nasty_text,
    )
    event = st.fixed_dictionaries(
        {
            "id": st.one_of(st.builds(lambda: f"evt_{uuid.uuid4().hex}"), nasty_text),
            "type": topic,
            "livemode": st.one_of(st.just(False), json_values),
            "data": st.fixed_dictionaries({"object": obj}),
        },
        optional={"object": json_values, "created": json_values},
    )
    return st.one_of(event, event, json_values)


@budget(120)
@given(data=st.data())
def test_signed_webhook_events_never_5xx_nor_leak(client, world, caplog, data):
    """Bodies that pass the signature check (so they reach JSON parsing and SQL), with hostile content."""
    caplog.set_level(logging.DEBUG)
    event = data.draw(event_strategy(world), label="event")
    body = json.dumps(event, ensure_ascii=data.draw(st.booleans(), label="ascii"))
    raw = body.encode("utf-8", "surrogatepass")
    try:
        headers = sign(body)
    except UnicodeEncodeError:  # a lone surrogate: the body cannot be signed, so it is not Stripe's
        headers = {"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json"}
    response = client.post(WEBHOOK, data=raw, headers=headers)
    check(response, caplog)
    if response.status_code == 200:
        assert response.json["received"] is True and response.json["status"] in (
            "processed",
            "ignored",
            "rejected",
        )


@budget(60)
@given(header=nasty_text, body=st.one_of(st.binary(max_size=200), json_values.map(json.dumps)))
def test_unsigned_or_forged_webhooks_are_400(client, world, caplog, header, body):
    caplog.set_level(logging.DEBUG)
    headers = {"Stripe-Signature": latin1(header.replace("\r", "").replace("\n", ""))} if header else {}
    response = client.post(WEBHOOK, data=body, headers={**headers, "Content-Type": "application/json"})
    check(response, caplog)
    assert response.status_code in (400, 413)


# Regressions the fuzzer found (each failed with a 500 before its fix).
SIGNED_REGRESSIONS = {
    "NUL in a string": '{"id": "evt_nul", "type": "checkout.session.completed", "livemode": false, '
    '"data": {"object": {"object": "checkout.session", "customer": "a\\u0000b"}}}',
    "NUL in the id": '{"id": "evt_\\u0000", "type": "x", "data": {"object": {}}}',
    "lone surrogate": '{"id": "evt_sur", "type": "x", "data": {"object": {"k": "\\ud800"}}}',
    "surrogate id": '{"id": "evt_\\udfff", "type": "x", "data": {"object": {}}}',
    "number overflow": '{"id": "evt_big", "type": "x", "data": {"object": {"amount_total": 1e999999}}}',
    "deep nesting": '{"id": "evt_deep", "type": "x", "data": {"object": ' + deeply_nested(5000) + "}}",
    "newline in the id": '{"id": "evt_a\\nFAKE LOG LINE", "type": "x", "data": {"object": {}}}',
}


@pytest.mark.parametrize("case", sorted(SIGNED_REGRESSIONS))
def test_signed_but_unstorable_events_are_stored_rejected_with_their_raw_body(client, conn, caplog, case):
    """Stripe signed it, so a retry cannot change it: one rejected row keeps the body as sent and the reason,
    and the answer is 2xx (issue 14 point 4); nothing completes."""
    caplog.set_level(logging.DEBUG)
    body = SIGNED_REGRESSIONS[case]
    response = client.post(WEBHOOK, data=body, headers=sign(body))
    check(response, caplog)
    assert response.status_code == 200 and response.json["status"] == "rejected", response.json
    assert conn.execute("SELECT status, raw_body, error IS NOT NULL FROM webhook_events").fetchall() == [
        ("rejected", body, True)
    ]
    assert (
        conn.execute("SELECT count(*) FROM payment_checkout_sessions WHERE status = 'completed'").fetchone()[
            0
        ]
        == 0
    )


@pytest.mark.parametrize("path", [CREATE, SESSION])
@pytest.mark.parametrize("body", [deeply_nested(5000), "[" * 100_000], ids=["objects", "arrays"])
def test_deeply_nested_json_is_400(client, world, caplog, path, body):
    caplog.set_level(logging.DEBUG)
    response = client.post(
        path, data=body, headers={**bearer(user_token(world["alice"])), "Content-Type": "application/json"}
    )
    check(response, caplog)
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_request"


def test_a_paid_event_still_completes_after_the_fuzz_checks(client, conn, world):
    """The checks above refuse hostile events; an ordinary one (with Unicode where Stripe allows it) works."""
    row = world["row"]
    body = json.loads(checkout_event("completed", row))
    body["data"]["object"]["metadata"]["note"] = "Zürich \u202e 💳"
    text = json.dumps(body, ensure_ascii=False)
    response = client.post(WEBHOOK, data=text.encode(), headers=sign(text))
    assert response.status_code == 200 and response.json["outcome"] == "completed"


# -- raw HTTP: what a test client cannot send (CR/LF and NUL in headers, broken framing) ----------------

RAW_REQUESTS = [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\rInjected: 1\r\n\r\n",
    b"GET /api/payments/checkout-session HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\nX-Injected: 1\r\n\r\n",
    b"GET /api/payments/checkout-session HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x00\xff\xfe\r\n\r\n",
    b"GET /api/payments/checkout-session?sessionId=%00%0d%0a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/payments/%0d%0aFORGED%20LOG%20LINE HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /%E2%80%AE%F0%9F%92%B3%ED%A0%80 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/payments/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}",
    b"POST /api/payments/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{}",
    b"POST /api/payments/webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    (
        b"POST /api/payments/webhook HTTP/1.1\r\nHost: x\r\nStripe-Signature: t=1,v1=a\r\n b\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    ),
    (
        b"PATCH /api/payments/checkout-session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + SERVICE_TOKEN.encode() + b"\r\nContent-Length: 40\r\n\r\n"
        b'{"sessionId": "\\u0000", "status": "\xff"}'
    ),
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # a TLS hello on the plain port
    b"BREW /healthz HTCPCP/1.0\r\n\r\n",
]


def raw_request(base_url: str, data: bytes) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(data)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_raw_hostile_http_never_5xx_nor_forges_log_lines(live_server, world):
    """Against `runner serve` itself: what the HTTP server refuses it answers itself (4xx), what reaches the
    app is answered below 500, and every line the process logs is one of its own (a path cannot forge one)."""
    for data in RAW_REQUESTS:
        answer = raw_request(live_server.url, data)
        text = answer.decode("latin-1")
        for line in text.split("\r\n"):
            if line.startswith("HTTP/1."):
                status = int(line.split()[1])
                assert status < 500, (data[:80], text[:300])
        assert not leaks(text), (data[:80], leaks(text))
        head = text.split("\r\n\r\n")[0]
        assert "Injected" not in head and "FORGED" not in head, head
    assert requests.get(live_server.url + "/healthz", timeout=5).status_code == 200  # still serving
    assert live_server.stop() == 0
    lines = live_server.log().splitlines()
    assert any(" INFO runner.access: GET /healthz 200 " in line for line in lines), lines[-5:]
    for line in lines:
        assert not leaks(line), line[:300]
        assert "Traceback" not in line and " ERROR " not in line, line[:300]
        # One request, one line: every line starts as the runner's own do.
        assert line.startswith("runner serve: ") or LOG_LINE.match(line), line[:300]
