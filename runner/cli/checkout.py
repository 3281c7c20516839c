"""`runner checkout ...` and `runner webhook ...`: the ops side of the checkout flow."""

from __future__ import annotations

import uuid

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
@click.option(
    "--user-id", required=True, type=click.UUID, metavar="UUID", help="The user (users.id) who will pay."
)
@click.option("--plan", required=True, metavar="CODE", help="A plan code of subscription_plans, e.g. pro.")
@click.option(
    "--metadata",
    metavar="JSON",
    default=None,
    help="The app's context as a small JSON object, stored and sent to Stripe (docs/audit-trail.md).",
)
@FORMAT
@click.pass_obj
def create(obj: Context, user_id: uuid.UUID, plan: str, metadata: str | None, fmt: str) -> None:
    """Start (or resume) a user's Stripe checkout and print the checkout URL.

    Same flow as POST /api/payments/create-checkout: the price comes from the plan catalogue, an open
    session is resumed with the same URL. Needs STRIPE_SECRET_KEY (and STRIPE_API_BASE for a fake).
    Safe to run again after a failure (exit 1, row still pending): the retry sends Stripe the same
    idempotency key and parameters, so the row does not get a second Stripe session.

    \b
    Examples:
      runner checkout create --user-id 6f1c0a4e-3b7e-4c1e-9d62-0d7c1f1f2a10 --plan pro
      runner checkout create --user-id "$USER_ID" --plan basic --format json | jq -r .url
      runner checkout create --user-id "$USER_ID" --plan pro --metadata '{"campaign": "spring"}'
    """
    import json

    from runner.payments import checkout as checkout_mod
    from runner.payments import stripe_gateway
    from runner.settings import Settings

    try:
        context = None if metadata is None else json.loads(metadata)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--metadata") from None
    settings = Settings.from_env()
    client = stripe_gateway.make_client(settings)
    conn = obj.connect("checkout create")
    try:
        result = checkout_mod.create_checkout(conn, client, settings, user_id, plan, metadata=context)
    finally:
        conn.close()
    session = result.session
    emit(
        {
            "checkoutSessionId": session["id"],
            "url": result.url,
            "resumed": result.resumed,
            "session": session,
        },
        fmt,
        f"{'Resumed' if result.resumed else 'Created'} checkout session {session['id']} "
        f"({session['plan']}, {session['amount']} {session['currency']}, expires {session['expiresAt']}):\n"
        f"{result.url}",
    )


@click.group()
def webhook() -> None:
    """Stored Stripe webhook events, and the signing secrets the database checks them with.

    \b
    Examples:
      runner webhook replay evt_1PzQ2bLkdIwHu7ix0ABCDEF
      runner webhook secret set          # stores STRIPE_WEBHOOK_SECRET's secret(s)
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


@webhook.group()
def secret() -> None:
    """The Stripe webhook signing secrets the database verifies each delivery with (owner only).

    record_webhook_event checks Stripe-Signature against these, so the service's database credential alone
    cannot record an event. Run as the database owner (the role of `runner apply`). To rotate: set the new
    secret, update STRIPE_WEBHOOK_SECRET (old,new while Stripe signs with both), then remove the old one.

    \b
    Examples:
      runner webhook secret set                      # STRIPE_WEBHOOK_SECRET (comma-separated: each)
      runner webhook secret set whsec_new...         # or one given
      runner webhook secret list --format json
      runner webhook secret remove 3f9a1c0d2e4b5a69  # by the fingerprint `list` prints
    """


@secret.command("set")
@click.argument("value", required=False, metavar="[SECRET]")
@FORMAT
@click.pass_obj
def secret_set(obj: Context, value: str | None, fmt: str) -> None:
    """Store a signing secret (SECRET, else each of STRIPE_WEBHOOK_SECRET's); storing one again is a no-op.

    \b
    Examples:
      runner webhook secret set
      runner webhook secret set "$NEW_WEBHOOK_SECRET" --format json
    """
    from runner.payments import webhook_secrets
    from runner.settings import Settings

    values = [value] if value else list(Settings.from_env().stripe_webhook_secrets)
    conn = obj.connect("webhook secret set")
    try:
        stored = webhook_secrets.set_secrets(conn, values)
    finally:
        conn.close()
    emit(
        [s.as_dict() for s in stored],
        fmt,
        "\n".join(f"{s.fingerprint} {s.hint}: {'added' if s.added else 'already stored'}" for s in stored),
    )


@secret.command("list")
@FORMAT
@click.pass_obj
def secret_list(obj: Context, fmt: str) -> None:
    """The stored signing secrets (fingerprint, hint, when added); never the secrets themselves.

    \b
    Examples:
      runner webhook secret list
    """
    from runner.payments import webhook_secrets

    conn = obj.connect("webhook secret list")
    try:
        stored = webhook_secrets.list_secrets(conn)
    finally:
        conn.close()
    emit(
        [s.as_dict() for s in stored],
        fmt,
        "\n".join(f"{s.fingerprint} {s.hint} added {s.created_at:%Y-%m-%d %H:%M:%S %Z}" for s in stored)
        or "no webhook signing secret stored: every delivery will be refused (runner webhook secret set)",
    )


@secret.command("remove")
@click.argument("fingerprint")
@FORMAT
@click.pass_obj
def secret_remove(obj: Context, fingerprint: str, fmt: str) -> None:
    """Remove the secret with FINGERPRINT (as `list` prints it); exit 1 when there is none.

    \b
    Examples:
      runner webhook secret remove 3f9a1c0d2e4b5a69
    """
    from runner.payments import webhook_secrets

    conn = obj.connect("webhook secret remove")
    try:
        webhook_secrets.remove_secret(conn, fingerprint)
    finally:
        conn.close()
    emit({"removed": fingerprint}, fmt, f"removed {fingerprint}")
