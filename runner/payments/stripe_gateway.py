"""The one place the runner talks to Stripe's API: a configured StripeClient and the two calls checkout needs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import stripe

from runner.errors import ConfigError
from runner.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StripeSession:
    """What checkout keeps of a Stripe Checkout Session."""

    id: str
    url: str | None
    status: str | None  # open | complete | expired
    expires_at: int | None


def make_client(settings: Settings) -> stripe.StripeClient:
    """A StripeClient for the configured key, API base (STRIPE_API_BASE: a fake or stripe-mock) and timeout."""
    if not settings.stripe_secret_key:
        raise ConfigError("STRIPE_SECRET_KEY is not set: creating a checkout needs the Stripe secret key")
    kwargs: dict[str, Any] = {}
    if settings.stripe_api_base:
        kwargs["base_addresses"] = {"api": settings.stripe_api_base}
    return stripe.StripeClient(
        settings.stripe_secret_key,
        http_client=stripe.RequestsClient(timeout=settings.stripe_timeout),
        max_network_retries=settings.stripe_max_network_retries,
        **kwargs,
    )


def _session(obj: Any) -> StripeSession:
    data = obj.to_dict()
    return StripeSession(
        id=data["id"], url=data.get("url"), status=data.get("status"), expires_at=data.get("expires_at")
    )


def create_checkout_session(
    client: stripe.StripeClient, params: dict[str, Any], idempotency_key: str
) -> StripeSession:
    """Create a Checkout Session; the same idempotency key returns the same session (Stripe keeps keys 24 h)."""
    return _session(
        client.v1.checkout.sessions.create(params=params, options={"idempotency_key": idempotency_key})
    )


def retrieve_checkout_session(client: stripe.StripeClient, session_id: str) -> StripeSession | None:
    """The Checkout Session, or None when Stripe does not know it (deleted, other account or mode)."""
    try:
        return _session(client.v1.checkout.sessions.retrieve(session_id))
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            return None
        raise
