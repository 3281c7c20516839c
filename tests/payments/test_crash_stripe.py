"""Stripe's API failing during create-checkout: 500s, and timeouts after Stripe did the work. Every retry
(the stripe library's own, and the customer's next click) sends the same idempotency key and parameters, so
one row never gets two Stripe sessions; a key moves on only when it cannot succeed (Stripe saved a 500
under it, or the parameters changed), and then the session it may have made was never shown to anyone."""

from __future__ import annotations

import random
import re
import time

import pytest

from tests.payments_support import bearer, user_token

CREATE = "/api/payments/create-checkout"
ROUNDS = 8


@pytest.fixture
def retrying_app(settings, fake_stripe):
    """The service with the stripe library retrying (2 retries) and a short timeout."""
    from runner.web.app import create_app

    # A timeout with room for a loaded machine: a plain answer must never take that long, or the library's
    # retries would be spent on it.
    fake_stripe.slow_seconds = 2.5
    app = create_app(settings.with_(stripe_max_network_retries=2, stripe_timeout=1.0))
    try:
        yield app
    finally:
        app.extensions["runner"].close()


def posts_for(fake_stripe, row_id: str) -> list[dict]:
    """The create requests for one row: (idempotency key, parameters)."""
    return [
        (headers.get("Idempotency-Key"), params)
        for method, path, params, headers in fake_stripe.requests
        if method == "POST" and params.get("client_reference_id") == row_id
    ]


def one_key_of(posts: list, row_id: str, generation: int = 0) -> str:
    """The single idempotency key the posts share: the row, its generation and a parameter digest."""
    keys = {key for key, _ in posts}
    assert len(keys) == 1, keys
    [key] = keys
    assert re.fullmatch(rf"checkout-session:{row_id}:{generation}:[0-9a-f]{{16}}", key), key
    return key


def click_fails(client, user) -> None:
    """A create-checkout that Stripe failed: 502, and the row kept for the next try."""
    failed = client.post(CREATE, json={"plan": "pro"}, headers=bearer(user_token(user)))
    assert failed.status_code == 502 and "still pending" in failed.json["error"]["message"], failed.json


def pending_row_without_stripe(conn, user) -> str:
    """The user's row, which must still be pending and linked to no Stripe session: its id."""
    row_id, status, stripe_id = conn.execute(
        "SELECT id::text, status, stripe_session_id FROM payment_checkout_sessions WHERE user_id = %s",
        (user,),
    ).fetchone()
    assert (status, stripe_id) == ("pending", None)
    return row_id


def checkout_until_ok(client, user, attempts: int = 5) -> tuple[dict, list[int]]:
    """The customer clicks again after each failure (502), up to `attempts` times."""
    statuses = []
    for _ in range(attempts):
        response = client.post(CREATE, json={"plan": "pro"}, headers=bearer(user_token(user)))
        statuses.append(response.status_code)
        if response.status_code == 200:
            return response.json, statuses
        assert response.status_code == 502, response.json
    raise AssertionError(f"no checkout after {attempts} attempts: {statuses}")


def test_500s_are_retried_with_the_same_idempotency_key(retrying_app, conn, make_user, fake_stripe):
    user = make_user()
    fake_stripe.create_failures = ["500", "500"]
    body, statuses = checkout_until_ok(retrying_app.test_client(), user)
    assert statuses == [200]  # the library's two retries were enough
    row_id = body["checkoutSessionId"]
    posts = posts_for(fake_stripe, row_id)
    assert len(posts) == 3
    one_key_of(posts, row_id)
    [created] = fake_stripe.sessions_created_for(row_id)
    assert body["session"]["stripeSessionId"] == created["id"] and body["url"] == created["url"]


def test_a_timeout_after_stripe_created_the_session_gets_that_session(
    retrying_app, conn, make_user, fake_stripe
):
    user = make_user()
    fake_stripe.create_failures = ["slow"]
    body, statuses = checkout_until_ok(retrying_app.test_client(), user)
    row_id = body["checkoutSessionId"]
    assert statuses == [200]
    one_key_of(posts_for(fake_stripe, row_id), row_id)
    assert len(posts_for(fake_stripe, row_id)) == 2
    [created] = fake_stripe.sessions_created_for(row_id)
    assert body["session"]["stripeSessionId"] == created["id"]


def test_every_retry_exhausted_then_the_customer_tries_again(retrying_app, conn, make_user, fake_stripe):
    """Stripe made the session on the first try, but every answer was lost (3 timeouts): 502 and the row stays
    pending without a Stripe id. The customer's next click sends the same key and gets that very session."""
    user = make_user()
    fake_stripe.create_failures = ["slow", "slow", "slow"]
    client = retrying_app.test_client()
    click_fails(client, user)
    row_id = pending_row_without_stripe(conn, user)
    assert len(fake_stripe.sessions_created_for(row_id)) == 1  # Stripe has it; we do not know yet
    assert conn.execute("SELECT count(*) FROM error_logs WHERE category = 'stripe'").fetchone()[0] == 1

    body, statuses = checkout_until_ok(client, user)
    assert statuses == [200] and body["checkoutSessionId"] == row_id
    [created] = fake_stripe.sessions_created_for(row_id)
    assert body["session"]["stripeSessionId"] == created["id"]
    posts = posts_for(fake_stripe, row_id)
    assert len(posts) == 4
    one_key_of(posts, row_id)
    assert len({repr(sorted(params.items())) for _, params in posts}) == 1  # same parameters each time


def test_the_next_click_minutes_after_a_lost_answer_gets_that_session(
    retrying_app, conn, make_user, fake_stripe, monkeypatch
):
    """The customer comes back 7 minutes after every answer was lost: the request must carry the parameters
    of the first (Stripe refuses a known key with others, which would fail every later click for the row)."""
    from runner.payments import checkout

    user = make_user()
    fake_stripe.create_failures = ["slow", "slow", "slow"]
    client = retrying_app.test_client()
    click_fails(client, user)
    later = time.time() + 7 * 60
    monkeypatch.setattr(checkout.time, "time", lambda: later)
    body, statuses = checkout_until_ok(client, user)
    assert statuses == [200]
    row_id = body["checkoutSessionId"]
    [created] = fake_stripe.sessions_created_for(row_id)
    assert body["session"]["stripeSessionId"] == created["id"]
    posts = posts_for(fake_stripe, row_id)
    one_key_of(posts, row_id)
    assert len({repr(sorted(params.items())) for _, params in posts}) == 1


def test_changed_parameters_after_a_lost_answer_get_a_new_key_not_a_stuck_row(
    retrying_app, conn, make_user, fake_stripe, settings
):
    """A deploy changes the success URL between the lost answer and the next click. The old key cannot be
    sent with new parameters; a new key gets the customer a session (the first, never shown, expires)."""
    from runner.web.app import create_app

    user = make_user()
    fake_stripe.create_failures = ["slow", "slow", "slow"]
    client = retrying_app.test_client()
    click_fails(client, user)
    deployed = create_app(settings.with_(success_url="https://example.com/welcome-v2"))
    try:
        body, statuses = checkout_until_ok(deployed.test_client(), user)
    finally:
        deployed.extensions["runner"].close()
    assert statuses == [200]
    row_id = body["checkoutSessionId"]
    first, second = fake_stripe.sessions_created_for(row_id)
    assert body["session"]["stripeSessionId"] == second["id"] != first["id"]
    keys = [key for key, _ in posts_for(fake_stripe, row_id)]
    assert len(set(keys)) == 2 and all(key.startswith(f"checkout-session:{row_id}:0:") for key in keys)
    assert (
        conn.execute(
            "SELECT stripe_session_id FROM payment_checkout_sessions WHERE id = %s", (row_id,)
        ).fetchone()[0]
        == second["id"]
    )


@pytest.mark.parametrize("failure", ["500-saved", "500-saved-quiet"])
def test_a_500_stripe_saved_under_the_key_moves_on_to_the_next_link(
    retrying_app, conn, make_user, fake_stripe, failure
):
    """Stripe saves a 500 that happened after the work began and replays it for 24 hours: retrying the key is
    useless (before the fourth session every click of the row got 502 for a day). The create moves on to the
    key's next link at once, whether Stripe said `Stripe-Should-Retry: false` or only replayed."""
    user = make_user()
    fake_stripe.create_failures = [failure]
    client = retrying_app.test_client()
    body, statuses = checkout_until_ok(client, user)
    assert statuses == [200]
    row_id = body["checkoutSessionId"]
    [created] = fake_stripe.sessions_created_for(row_id)
    assert body["session"]["stripeSessionId"] == created["id"]
    keys = [key for key, _ in posts_for(fake_stripe, row_id)]
    first = one_key_of([(k, None) for k in keys[:-1]], row_id)
    assert keys[-1] == first + ":1"
    # Stripe said not to retry: one request; it did not say so: the library's retry met the replay.
    assert len(keys) == (2 if failure == "500-saved" else 3)
    [logged] = conn.execute("SELECT message FROM error_logs WHERE category = 'stripe'").fetchone()
    assert f"idempotency key {first} " in logged
    # The next visit resumes it, and a click that must create again walks to the same link.
    again = client.post(CREATE, json={"plan": "pro"}, headers=bearer(user_token(user)))
    assert again.json["resumed"] is True and again.json["url"] == created["url"]


def test_every_link_spent_is_a_502_that_changes_nothing(retrying_app, conn, make_user, fake_stripe):
    user = make_user()
    fake_stripe.create_failures = ["500-saved"] * 4
    client = retrying_app.test_client()
    for _ in range(2):  # the second click meets the 4 replays
        click_fails(client, user)
    row_id = pending_row_without_stripe(conn, user)
    keys = [key for key, _ in posts_for(fake_stripe, row_id)]
    first = keys[0]
    assert keys == [first, f"{first}:1", f"{first}:2", f"{first}:3"] * 2
    assert fake_stripe.sessions_created_for(row_id) == []


def test_random_failures_never_make_two_stripe_sessions_for_one_row(
    retrying_app, conn, make_user, fake_stripe
):
    rng = random.Random(7)
    client = retrying_app.test_client()
    tried = {"500": 0, "slow": 0, "requests": 0}
    for _ in range(ROUNDS):
        user = make_user()
        fake_stripe.create_failures = [rng.choice(["500", "slow"]) for _ in range(rng.randint(0, 4))]
        for failure in fake_stripe.create_failures:
            tried[failure] += 1
        body, statuses = checkout_until_ok(client, user)
        tried["requests"] += len(statuses)
        row_id = body["checkoutSessionId"]
        [created] = fake_stripe.sessions_created_for(row_id)
        assert body["session"]["stripeSessionId"] == created["id"]
        one_key_of(posts_for(fake_stripe, row_id), row_id)
        # And the next visit resumes that session instead of creating one.
        again = client.post(CREATE, json={"plan": "pro"}, headers=bearer(user_token(user)))
        assert again.json["resumed"] is True and again.json["url"] == created["url"]
    print(f"stripe failures injected: {tried}")
    assert tried["500"] + tried["slow"] >= ROUNDS
    assert conn.execute(
        "SELECT count(*), count(DISTINCT stripe_session_id) FROM payment_checkout_sessions"
    ).fetchone() == (ROUNDS, ROUNDS)
    assert len(fake_stripe.sessions) == ROUNDS
