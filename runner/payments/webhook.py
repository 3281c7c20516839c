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
from typing import Any

import psycopg
import stripe
from psycopg import pq

from runner.errors import InvalidRequest, NotFound, WebhookSignatureError

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


# The service's one statement per delivery, prepared once per connection under a name of its own (psycopg's
# own prepared statements are named _pg3_*). Parameters and results travel as text.
RECORD_STATEMENT = b"runner_record_webhook_event"
RECORD_SQL = (b"SELECT status, outcome, checkout_session_id, duplicate"
              b" FROM record_webhook_event($1::text, $2::text, $3::jsonb, $4::boolean)")


def _record(conn: psycopg.Connection, params: list[str]) -> tuple:
    """Run RECORD_SQL in one blocking libpq call (psycopg.pq, psycopg's public libpq wrapper).

    psycopg's execute() sends, flushes, polls and reads in separate steps, releasing the GIL at each; under
    `runner serve`'s worker threads every release is a thread switch. Measured with 16 threads and a 2 ms
    query: 27 vs 11 context switches and 0.60 vs 0.36 ms of server CPU per request (docs/performance.md).
    The connection is lent by the pool to this request alone and is in autocommit mode, so nothing else
    is in flight on it; errors are raised as psycopg raises them.
    """
    pgconn = conn.pgconn
    encoding = conn.info.encoding  # the connection's client_encoding, as a Python codec
    values = [value.encode(encoding) for value in params]
    if not getattr(conn, "_runner_record_prepared", False):
        _check(conn, pgconn.prepare(RECORD_STATEMENT, RECORD_SQL))
        conn._runner_record_prepared = True
    result = pgconn.exec_prepared(RECORD_STATEMENT, values)
    if result.error_field(pq.DiagnosticField.SQLSTATE) == b"26000":  # DEALLOCATEd on this connection: again
        _check(conn, pgconn.prepare(RECORD_STATEMENT, RECORD_SQL))
        result = pgconn.exec_prepared(RECORD_STATEMENT, values)
    _check(conn, result)
    return tuple(None if value is None else value.decode(encoding)
                 for value in (result.get_value(0, column) for column in range(result.nfields)))


def _check(conn: psycopg.Connection, result: pq.abc.PGresult) -> None:
    if result.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        return
    if conn.pgconn.status == pq.ConnStatus.BAD:  # the socket broke: no SQLSTATE, the database is unreachable
        raise psycopg.OperationalError(result.get_error_message() or "the connection to the database was lost")
    raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


def handle(conn: psycopg.Connection, event: Event, expected_livemode: bool) -> Outcome:
    """Record the event and process it unless an earlier delivery did; one transaction (autocommit conn)."""
    from runner.payments.checkout import sql_errors

    with sql_errors():
        status, outcome, session_id, duplicate = _record(
            conn, [event.id, event.type, event.raw, "true" if expected_livemode else "false"])
    result = Outcome(event.id, status, outcome, session_id, duplicate == "t")
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
    from runner.payments.checkout import sql_errors

    with sql_errors():
        row = conn.execute("SELECT * FROM process_webhook_event(%s, %s)", (event_id, expected_livemode)).fetchone()
    if row is None:
        raise NotFound(f"no stored webhook event {event_id}")
    return Outcome(event_id, row[0], row[1], str(row[2]) if row[2] else None, False)
