"""`runner checkout ...` and `runner webhook ...`: the ops side of the checkout flow."""

from __future__ import annotations

import click

from runner.cli import FORMAT, Context, emit


@click.group()
def checkout() -> None:
    """Checkout sessions, for operators (the app uses the HTTP API).

    \b
    Examples:
      runner checkout create --user-id 6f1c0a4e-3b7e-4c1e-9d62-0d7c1f1f2a10 --plan pro
    """


@checkout.command()
@click.option("--user-id", required=True, metavar="UUID", help="The user (users.id) who will pay.")
@click.option("--plan", required=True, metavar="CODE", help="A plan code of subscription_plans, e.g. pro.")
@FORMAT
@click.pass_obj
def create(obj: Context, user_id: str, plan: str, fmt: str) -> None:
    """Start (or resume) a user's Stripe checkout and print the checkout URL.

    Same flow as POST /api/payments/create-checkout: the price comes from the plan catalogue, an open
    session is resumed with the same URL. Needs STRIPE_SECRET_KEY (and STRIPE_API_BASE for a fake).
    Safe to run again after a failure (exit 1, row still pending): the retry sends Stripe the same
    idempotency key and parameters, so the row does not get a second Stripe session.

    \b
    Examples:
      runner checkout create --user-id 6f1c0a4e-3b7e-4c1e-9d62-0d7c1f1f2a10 --plan pro
      runner checkout create --user-id "$USER_ID" --plan basic --format json | jq -r .url
    """
    from runner.payments import checkout as checkout_mod
    from runner.payments import stripe_gateway
    from runner.settings import Settings

    settings = Settings.from_env()
    client = stripe_gateway.make_client(settings)
    conn = obj.connect("checkout create")
    try:
        result = checkout_mod.create_checkout(conn, client, settings, user_id, plan)
    finally:
        conn.close()
    session = result.session
    emit({"checkoutSessionId": session["id"], "url": result.url, "resumed": result.resumed, "session": session},
         fmt,
         f"{'Resumed' if result.resumed else 'Created'} checkout session {session['id']} "
         f"({session['plan']}, {session['amount']} {session['currency']}, expires {session['expiresAt']}):\n"
         f"{result.url}")


@click.group()
def webhook() -> None:
    """Stored Stripe webhook events.

    \b
    Examples:
      runner webhook replay evt_1PzQ2bLkdIwHu7ix0ABCDEF
    """


@webhook.command()
@click.argument("event_id")
@FORMAT
@click.pass_obj
def replay(obj: Context, event_id: str, fmt: str) -> None:
    """Process the stored event EVENT_ID again (idempotent: a completed session stays completed once).

    For an event that failed or was rejected and whose cause is fixed. Livemode is checked against
    STRIPE_LIVEMODE (default: follows STRIPE_SECRET_KEY).

    \b
    Examples:
      runner webhook replay evt_1PzQ2bLkdIwHu7ix0ABCDEF
      psql "$DATABASE_URL" -c "SELECT stripe_event_id FROM webhook_events WHERE status = 'failed'"
    """
    from runner.payments import webhook as webhook_mod
    from runner.settings import Settings

    settings = Settings.from_env()
    conn = obj.connect("webhook replay")
    try:
        outcome = webhook_mod.replay(conn, event_id, settings.stripe_livemode)
    finally:
        conn.close()
    emit(outcome.as_dict(), fmt, f"{event_id}: {outcome.status} ({outcome.outcome or 'no change'})")
