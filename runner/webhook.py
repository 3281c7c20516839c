"""Stripe webhook deliveries: verify the signature over the raw body, then record and process the event once.

Verification uses the stripe library (`WebhookSignature.verify_header`) against every configured secret, so
STRIPE_WEBHOOK_SECRET can hold the old and the new secret while rotating. What an event does to its checkout
session is decided in SQL (`record_webhook_event` / `process_webhook_event`), in one transaction.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import stripe

from runner.errors import InvalidRequest, NotFound, WebhookSignatureError

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # Stripe's events are a few KiB; anything near this is not from Stripe.


@dataclass(frozen=True)
class Event:
    """The parts of a verified event the runner needs, plus its raw JSON (stored as it came)."""

    id: str
    type: str
    livemode: bool | None
    raw: str


@dataclass(frozen=True)
class Outcome:
    """What processing did: status processed | ignored | rejected, a readable outcome, and whether this
    delivery was a duplicate of an event already processed."""

    event_id: str
    status: str
    outcome: str | None
    checkout_session_id: str | None
    duplicate: bool

    def as_dict(self) -> dict[str, Any]:
        return {"received": True, "eventId": self.event_id, "status": self.status, "outcome": self.outcome,
                "checkoutSessionId": self.checkout_session_id, "duplicate": self.duplicate}


def verify_signature(payload: bytes, header: str | None, secrets: tuple[str, ...] | list[str],
                     tolerance: int = 300, now: float | None = None) -> None:
    """Raise WebhookSignatureError unless `header` signs `payload` with one of `secrets` within `tolerance`.

    The stripe library refuses old timestamps; a timestamp further than `tolerance` in the future is refused
    here too (a signature minted ahead of time would otherwise stay replayable).
    """
    if not secrets:
        raise WebhookSignatureError("webhook signing secret is not configured (STRIPE_WEBHOOK_SECRET)")
    if not header:
        raise WebhookSignatureError("missing Stripe-Signature header")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookSignatureError("body is not UTF-8, so it cannot carry a valid signature") from None
    last: Exception | None = None
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, tolerance)
            break
        except stripe.SignatureVerificationError as exc:
            last = exc
    else:
        raise WebhookSignatureError(f"Stripe-Signature does not verify: {last}")
    timestamp = stripe.WebhookSignature._get_timestamp_and_signatures(header, "v1")[0]
    now = time.time() if now is None else now
    if timestamp > now + tolerance:
        raise WebhookSignatureError(f"Stripe-Signature timestamp {timestamp} is in the future")


def parse_event(payload: bytes) -> Event:
    """The event in a verified body; InvalidRequest when it is not a Stripe event object."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequest("body is not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body must be a JSON object (a Stripe event)")
    event_id, event_type = data.get("id"), data.get("type")
    # Printable: no NUL, line break or lone surrogate in what is stored, logged and keyed on.
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255 or not event_id.isprintable():
        raise InvalidRequest("event has no valid id")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 255 or not event_type.isprintable():
        raise InvalidRequest("event has no valid type")
    if not isinstance(data.get("data"), dict) or not isinstance(data["data"].get("object"), dict):
        raise InvalidRequest("event has no data.object")
    problem = _unstorable(data)
    if problem:
        raise InvalidRequest(f"event cannot be stored: {problem}")
    livemode = data.get("livemode")
    return Event(event_id, event_type, livemode if isinstance(livemode, bool) else None, payload.decode("utf-8"))


def _unstorable(value: Any) -> str | None:
    """Why PostgreSQL's jsonb would refuse this parsed JSON (a 500 on every redelivery), or None.

    JSON allows what jsonb does not: \\u0000, lone surrogates (\\ud800), numbers beyond any float
    (1e999999). Stripe sends none of them; a body that does is refused before the database sees it.
    Iterative: a deeply nested body must not exhaust the stack.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "a string holds a NUL character"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a string holds a lone surrogate"
        elif isinstance(item, float) and not math.isfinite(item):
            return "a number is out of range"
    return None


def _outcome(event_id: str, row: tuple) -> Outcome:
    status, outcome, session_id, duplicate = row
    return Outcome(event_id, status, outcome, str(session_id) if session_id else None, duplicate)


def handle(conn: psycopg.Connection, event: Event, expected_livemode: bool) -> Outcome:
    """Record the event and process it unless an earlier delivery did; one transaction (autocommit conn)."""
    from runner.checkout import sql_errors

    with sql_errors():
        row = conn.execute(
            "SELECT * FROM record_webhook_event(%s, %s, %s::jsonb, %s)",
            (event.id, event.type, event.raw, expected_livemode),
        ).fetchone()
    result = _outcome(event.id, row)
    if result.status == "rejected" and not result.duplicate:
        log.warning("Stripe event %s (%s) rejected: %s", event.id, event.type, result.outcome)
    return result


def record_failure(conn: psycopg.Connection, event: Event, error: str) -> None:
    """Mark an event whose processing failed unexpectedly (Stripe's retry processes it again)."""
    try:
        conn.execute("SELECT fail_webhook_event(%s, %s, %s::jsonb, %s)", (event.id, event.type, event.raw, error[:2000]))
    except Exception as exc:  # noqa: BLE001 - best effort: the 500 already tells Stripe to retry
        log.warning("could not record the failure of event %s: %s", event.id, exc)


def replay(conn: psycopg.Connection, event_id: str, expected_livemode: bool) -> Outcome:
    """Process a stored event again (`runner webhook replay`): idempotent, like a redelivery that is not skipped."""
    from runner.checkout import sql_errors

    with sql_errors():
        row = conn.execute("SELECT * FROM process_webhook_event(%s, %s)", (event_id, expected_livemode)).fetchone()
    if row is None:
        raise NotFound(f"no stored webhook event {event_id}")
    return Outcome(event_id, row[0], row[1], str(row[2]) if row[2] else None, False)
