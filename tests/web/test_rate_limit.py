"""The per-user rate limit of create-checkout (issue 14): CHECKOUT_RATE_LIMIT new Stripe Checkout Sessions per
CHECKOUT_RATE_WINDOW seconds; past it 429 with Retry-After, no Stripe call, an error_logs row. Counted in the
database, so it holds across service processes and concurrent requests."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from runner.web.app import create_app
from tests.payments_support import bearer, user_token

CREATE = "/api/payments/create-checkout"
SESSION = "/api/payments/checkout-session"


def create(client, user, plan="pro"):
    return client.post(CREATE, json={"plan": plan}, headers=bearer(user_token(user)))


def cancel(client, user, session_id):
    answer = client.patch(
        SESSION, json={"sessionId": session_id, "status": "canceled"}, headers=bearer(user_token(user))
    )
    assert answer.status_code == 200, answer.json


@pytest.fixture
def limited(settings):
    """Two apps (as two service processes would be) on one database, 3 new Stripe sessions per user per 10 min."""
    apps = [create_app(settings.with_(checkout_rate_limit=3, checkout_rate_window=600)) for _ in range(2)]
    try:
        yield [app.test_client() for app in apps]
    finally:
        for app in apps:
            app.extensions["runner"].close()


def test_the_fourth_new_session_in_the_window_is_429_without_a_stripe_call(
    limited, conn, make_user, fake_stripe
):
    user, other = make_user(), make_user()
    for k in range(3):  # alternating between the two processes: the count is the database's
        made = create(limited[k % 2], user)
        assert made.status_code == 200, made.json
        cancel(limited[k % 2], user, made.json["checkoutSessionId"])
    calls = len(fake_stripe.requests)
    refused = create(limited[1], user)
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "rate_limited"
    assert "at most 3 per 600 seconds" in refused.json["error"]["message"]
    assert 590 <= int(refused.headers["Retry-After"]) <= 600
    assert len(fake_stripe.requests) == calls  # nothing sent to Stripe
    assert len(fake_stripe.created()) == 3
    logged = conn.execute("SELECT message, context FROM error_logs WHERE category = 'rate_limit'").fetchall()
    assert len(logged) == 1 and logged[0][1]["user_id"] == str(user) and logged[0][1]["limit"] == 3
    assert f"user {user} reached the limit of 3" in logged[0][0]
    # Another user is not affected; the refused user may still resume an open session (no new one).
    assert create(limited[0], other).status_code == 200
    assert create(limited[0], other).json["resumed"] is True


def test_a_session_is_allowed_again_once_the_window_has_passed(settings, make_user, fake_stripe):
    app = create_app(settings.with_(checkout_rate_limit=1, checkout_rate_window=2))
    client, user = app.test_client(), make_user()
    try:
        first = create(client, user)
        cancel(client, user, first.json["checkoutSessionId"])
        refused = create(client, user)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) in (1, 2)
        time.sleep(int(refused.headers["Retry-After"]) + 0.1)
        again = create(client, user)
    finally:
        app.extensions["runner"].close()
    assert again.status_code == 200, again.json
    assert len(fake_stripe.created()) == 2


def test_concurrent_creates_of_one_user_get_exactly_the_limit(settings, conn, make_user, fake_stripe):
    """Three plans at once (three pending rows, three Stripe sessions wanted) with a limit of 2, ten rounds."""
    app = create_app(settings.with_(checkout_rate_limit=2, checkout_rate_window=600, pool_max_size=6))
    try:
        for _ in range(10):
            user, statuses = make_user(), []
            start = threading.Barrier(3)

            def attempt(plan, user=user, statuses=statuses, start=start):
                client = app.test_client()
                start.wait()
                statuses.append(create(client, user, plan).status_code)

            threads = [
                threading.Thread(target=attempt, args=(plan,)) for plan in ("basic", "pro", "enterprise")
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert sorted(statuses) == [200, 200, 429]
            assert [p["metadata[userId]"] for p in fake_stripe.created()].count(str(user)) == 2
    finally:
        app.extensions["runner"].close()


def test_the_sql_function_takes_turns_per_user(db_url, conn, make_user):
    """20 connections asking at once for one user's 5 slots: exactly 5 get one."""
    user, answers = make_user(), []
    start = threading.Barrier(20)

    def take():
        with psycopg.connect(db_url, autocommit=True) as mine:
            start.wait()
            answers.append(
                mine.execute("SELECT take_stripe_session_quota(%s, 5, 600)", (user,)).fetchone()[0]
            )

    threads = [threading.Thread(target=take) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(answers) == 20 and answers.count(0) == 5
    assert all(595 <= wait <= 600 for wait in answers if wait)  # seconds until the oldest of the 5 frees
    assert conn.execute(
        "SELECT count(*) FROM checkout_stripe_session_quota WHERE user_id = %s", (user,)
    ).fetchone() == (5,)


@pytest.mark.parametrize(
    "args, message",
    [
        ((None, 5, 600), "p_user_id is required"),
        ((uuid.uuid4(), 0, 600), "p_limit must be at least 1, got 0"),
        ((uuid.uuid4(), 5, 0), "p_window_seconds must be at least 1, got 0"),
    ],
)
def test_the_sql_function_refuses_bad_arguments(conn, args, message):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        conn.execute("SELECT take_stripe_session_quota(%s, %s, %s)", args)


def test_a_limit_of_zero_turns_it_off(settings, make_user, fake_stripe):
    app = create_app(settings.with_(checkout_rate_limit=0))
    client, user = app.test_client(), make_user()
    try:
        for _ in range(4):
            made = create(client, user)
            assert made.status_code == 200
            cancel(client, user, made.json["checkoutSessionId"])
    finally:
        app.extensions["runner"].close()
    assert len(fake_stripe.created()) == 4
