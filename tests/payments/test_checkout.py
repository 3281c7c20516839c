"""Creating a checkout: the database row, the Stripe Checkout Session (a fake Stripe reached by the real
stripe library), linking them, resuming, replacing a gone session, and Stripe failures."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.errors import Conflict, InvalidRequest, NotFound, PaymentProviderError
from runner.payments import checkout, stripe_gateway
from tests.payments_support import session_row


@pytest.fixture
def stripe_client(settings):
    return stripe_gateway.make_client(settings)


def test_create_checkout_creates_links_and_prices_from_the_catalogue(
    conn, make_user, settings, stripe_client, fake_stripe
):
    user = make_user("ann@example.com")
    result = checkout.create_checkout(conn, stripe_client, settings, user, "pro")

    row = session_row(conn, result.session["id"])
    assert (row["status"], row["attempts"], row["stripe_sessions_created"]) == ("pending", 1, 1)
    assert result.url == row["checkout_url"] == fake_stripe.sessions[row["stripe_session_id"]]["url"]
    assert result.resumed is False
    params = fake_stripe.created()[0]
    assert params["metadata[userId]"] == str(user)
    assert params["metadata[plan]"] == "pro"
    assert params["metadata[checkoutSessionId]"] == str(row["id"])
    assert params["client_reference_id"] == str(row["id"])
    assert params["customer_email"] == "ann@example.com"
    assert params["line_items[0][price_data][unit_amount]"] == "2999"
    assert params["line_items[0][price_data][currency]"] == "usd"
    assert params["mode"] == "subscription"
    assert int(params["expires_at"]) == int(row["expires_at"].timestamp())
    headers = fake_stripe.requests[0][3]
    assert re.fullmatch(rf"checkout-session:{row['id']}:0:[0-9a-f]{{16}}", headers["Idempotency-Key"])


def test_returning_customer_gets_the_same_url(conn, make_user, settings, stripe_client, fake_stripe):
    user = make_user()
    first = checkout.create_checkout(conn, stripe_client, settings, user, "pro")
    again = checkout.create_checkout(conn, stripe_client, settings, user, "pro")
    assert again.url == first.url and again.resumed is True
    assert again.session["attempts"] == 2
    assert len(fake_stripe.created()) == 1


@pytest.mark.parametrize("what", ["expired", "gone"])
def test_a_gone_or_expired_stripe_session_is_replaced(
    conn, make_user, settings, stripe_client, fake_stripe, what
):
    user = make_user()
    first = checkout.create_checkout(conn, stripe_client, settings, user, "pro")
    old_id = first.session["stripeSessionId"]
    if what == "expired":
        fake_stripe.sessions[old_id]["status"] = "expired"
    else:
        del fake_stripe.sessions[old_id]
    again = checkout.create_checkout(conn, stripe_client, settings, user, "pro")
    assert again.session["id"] == first.session["id"]
    assert again.session["stripeSessionId"] != old_id and again.url != first.url
    assert re.fullmatch(
        rf"checkout-session:{first.session['id']}:1:[0-9a-f]{{16}}",
        fake_stripe.requests[-1][3]["Idempotency-Key"],
    )
    assert session_row(conn, first.session["id"])["stripe_sessions_created"] == 2


def test_a_paid_stripe_session_is_not_replaced(conn, make_user, settings, stripe_client, fake_stripe):
    user = make_user()
    first = checkout.create_checkout(conn, stripe_client, settings, user, "pro")
    fake_stripe.sessions[first.session["stripeSessionId"]]["status"] = "complete"
    with pytest.raises(Conflict, match="already paid"):
        checkout.create_checkout(conn, stripe_client, settings, user, "pro")
    assert len(fake_stripe.created()) == 1


@pytest.mark.parametrize("status", [500, 401, 429])
def test_stripe_failure_leaves_the_row_pending_and_logs(
    conn, make_user, settings, stripe_client, fake_stripe, status
):
    user = make_user()
    fake_stripe.fail_with = status
    with pytest.raises(PaymentProviderError, match="still pending"):
        checkout.create_checkout(conn, stripe_client, settings, user, "pro")
    row = conn.execute(
        "SELECT status, stripe_session_id, checkout_url FROM payment_checkout_sessions WHERE user_id = %s",
        (user,),
    ).fetchone()
    assert row == ("pending", None, None)
    logged = conn.execute(
        "SELECT message, context->>'user_id' FROM error_logs WHERE category = 'stripe'"
    ).fetchall()
    assert len(logged) == 1 and logged[0][1] == str(user) and "create the checkout session" in logged[0][0]
    # The next attempt (Stripe is back) succeeds on the same row.
    result = checkout.create_checkout(conn, stripe_client, settings, user, "pro")
    assert result.session["status"] == "pending" and result.url.startswith("https://checkout.stripe.test/")


def test_unreachable_stripe_is_a_provider_error(conn, make_user, settings):
    client = stripe_gateway.make_client(
        settings.with_(stripe_api_base="http://127.0.0.1:9", stripe_timeout=1)
    )
    with pytest.raises(PaymentProviderError):
        checkout.create_checkout(conn, client, settings, make_user(), "pro")
    assert conn.execute("SELECT count(*) FROM error_logs WHERE category = 'stripe'").fetchone()[0] == 1


@pytest.mark.parametrize(
    "user_id, plan, error, message",
    [
        ("not-a-uuid", "pro", InvalidRequest, "userId must be a UUID"),
        (None, "PRO; drop table users", InvalidRequest, "plan must be a plan code"),
        (None, "platinum", InvalidRequest, "unknown plan"),
        ("00000000-0000-0000-0000-000000000000", "pro", NotFound, "unknown user"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    conn, make_user, settings, stripe_client, fake_stripe, user_id, plan, error, message
):
    with pytest.raises(error, match=message):
        checkout.create_checkout(conn, stripe_client, settings, user_id or make_user(), plan)
    assert conn.execute("SELECT count(*) FROM payment_checkout_sessions").fetchone()[0] == 0
    assert fake_stripe.requests == []


def test_double_click_creates_one_stripe_session(
    db_url, conn, make_user, settings, stripe_client, fake_stripe
):
    """Eight concurrent create-checkout calls for one user and plan: one row, one Stripe session, one URL."""
    user = make_user()
    fake_stripe.delay = 0.05  # keep the requests overlapping inside Stripe
    urls, errors = [], []
    barrier = threading.Barrier(8)

    def click():
        with psycopg.connect(db_url, autocommit=True) as c:
            barrier.wait()
            try:
                urls.append(checkout.create_checkout(c, stripe_client, settings, user, "pro").url)
            except Exception as exc:  # noqa: BLE001 - reported by the assert below
                errors.append(exc)

    threads = [threading.Thread(target=click) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(urls)) == 1 and len(urls) == 8
    assert len(fake_stripe.sessions) == 1
    assert conn.execute("SELECT count(*), max(attempts) FROM payment_checkout_sessions").fetchone() == (1, 8)


def test_expiry_is_inside_stripes_window_and_does_not_move_with_the_clock():
    """Stripe accepts 30 min .. 24 h from now. The value should not change between two attempts for one row
    (a changed value means a new idempotency key, so a lost answer's session is left unused), so it comes from
    the row, not the clock: it changes once at most, when the row comes within 31 minutes of its end (a value
    valid at the first click would then be too near for Stripe)."""
    start = time.time()

    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(start + seconds, UTC)

    hour = 3600
    cases = {  # (created, expires) relative to start: the row as get_or_create_checkout_session left it
        "fresh, the default 24 h": (0, 24 * hour),
        "an hour old": (-hour, 23 * hour),
        "5 hours left": (-19 * hour, 5 * hour),
        "10 minutes left": (-(24 * hour - 600), 600),
        "30 seconds left": (-(24 * hour - 30), 30),
        "a short expiry_hours": (-60, 20 * 60),
    }
    for name, (created, expires) in cases.items():
        values = []
        # Every click from the row's creation until a second before its deadline.
        for now in [*range(max(created, 0), expires, 37), expires - 1]:
            value = checkout.stripe_expires_at(at(created), at(expires), start + now)
            assert start + now + 30 * 60 < value < start + now + 24 * hour, (name, now, value)
            if not values or values[-1] != value:
                values.append(value)
        assert len(values) <= 2, (name, values)
    # The row's own deadline when Stripe allows it; 36 minutes past it when the deadline is too near.
    assert checkout.stripe_expires_at(at(-hour), at(5 * hour), start) == int(start + 5 * hour)
    assert checkout.stripe_expires_at(at(-hour), at(600), start) == int(start + 600 + 36 * 60)
    # A row kept open longer than Stripe allows (expiry_hours = 48): capped, at most 24 h from now.
    for now in (0, 3 * hour, 30 * hour, 47.9 * hour):
        value = checkout.stripe_expires_at(at(0), at(48 * hour), start + now)
        assert start + now + 30 * 60 < value < start + now + 24 * hour, (now, value)


def test_a_row_near_its_deadline_takes_stripes_expiry(conn, make_user, settings, stripe_client, fake_stripe):
    user = make_user()
    sid = conn.execute(
        "SELECT get_or_create_checkout_session(%s, 'x@example.com', 'pro')", (user,)
    ).fetchone()[0]
    conn.execute(
        "UPDATE payment_checkout_sessions SET expires_at = now() + interval '5 minutes' WHERE id = %s", (sid,)
    )
    checkout.create_checkout(conn, stripe_client, settings, user, "pro")
    row = session_row(conn, sid)
    assert int(row["expires_at"].timestamp()) == int(fake_stripe.created()[0]["expires_at"])
    assert row["expires_at"] > datetime.now(UTC) + timedelta(minutes=30)


def test_cli_checkout_create(db_url, make_user, fake_stripe, monkeypatch):
    user = make_user()
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_fake")
    monkeypatch.setenv("STRIPE_API_BASE", fake_stripe.url)
    result = CliRunner().invoke(
        cli, ["--database-url", db_url, "checkout", "create", "--user-id", str(user), "--plan", "basic"]
    )
    assert result.exit_code == 0, result.output
    assert "https://checkout.stripe.test/c/pay/cs_test_" in result.output
    bad = CliRunner().invoke(
        cli, ["--database-url", db_url, "checkout", "create", "--user-id", str(user), "--plan", "gold"]
    )
    assert bad.exit_code == 1 and "Error: unknown plan: 'gold'" in bad.output
