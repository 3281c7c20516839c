"""Stripe webhook deliveries: verify the signature over the raw body, then record and process the event once.

Verification uses the stripe library (`WebhookSignature.verify_header`) against every configured secret, so
STRIPE_WEBHOOK_SECRET can hold the old and the new secret while rotating. The database verifies the signature
again over the same raw body (`record_webhook_event`, against its owner-only webhook_secrets: a database
credential alone cannot record an event), checks the event's shape strictly and decides what it does to its
checkout session, in one transaction. A signed event it cannot process as sent is stored as rejected.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import psycopg
import stripe
from psycopg import pq

from runner.errors import (
    InvalidRequest,
    NotFound,
    WebhookSecretNotInDatabase,
    WebhookSignatureError,
    sql_errors,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # Stripe's events are a few KiB; anything near this is not from Stripe.


@dataclass(frozen=True)
class Delivery:
    """A delivery whose signature verified: the raw body and Stripe-Signature header, passed to the database
    as they came (it checks the signature again), and the event's id and type as far as they can be read (for
    logs: a signed body that is not a well-formed event is still recorded, as rejected)."""

    body: str
    signature: str

    @classmethod
    def of(cls, payload: bytes, signature: str) -> Delivery:
        """The delivery of a verified body; InvalidRequest only for what no database text can hold."""
        try:
            body = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("body is not UTF-8") from None
        if "\x00" in body:  # a raw NUL byte: not JSON, and no PostgreSQL text can carry it
            raise InvalidRequest("body holds a NUL byte, which no Stripe event does")
        return cls(body, signature)

    # Parsed only when a log line needs them: the database parses the body anyway, and a delivery that goes
    # well logs neither (a JSON parse is about 15 us of the webhook's hot path).
    @cached_property
    def _id_and_type(self) -> tuple[str | None, str | None]:
        try:
            data = json.loads(self.body)
        except (ValueError, RecursionError):
            return None, None
        if not isinstance(data, dict):
            return None, None
        # Printable only: what is logged must not carry a line break of its own (a forged log line).
        event_id, event_type = (
            value[:255] if isinstance(value, str) and value.isprintable() else None
            for value in (data.get("id"), data.get("type"))
        )
        return event_id, event_type

    @property
    def id(self) -> str | None:
        return self._id_and_type[0]

    @property
    def type(self) -> str | None:
        return self._id_and_type[1]

    @property
    def label(self) -> str:
        """The event as logs name it: its id, or `unparsed` for a body without one."""
        return self.id or "unparsed"


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
        return {
            "received": True,
            "eventId": self.event_id,
            "status": self.status,
            "outcome": self.outcome,
            "checkoutSessionId": self.checkout_session_id,
            "duplicate": self.duplicate,
        }


def verify_signature(
    payload: bytes,
    header: str | None,
    secrets: tuple[str, ...] | list[str],
    tolerance: int = 300,
    now: float | None = None,
) -> None:
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


# The service's one statement per delivery, prepared once per connection under a name of its own (psycopg's
# own prepared statements are named _pg3_*). Parameters and results travel as text.
RECORD_STATEMENT = b"runner_record_webhook_event"
RECORD_SQL = (
    b"SELECT event_id, status, outcome, checkout_session_id, duplicate"
    b" FROM record_webhook_event($1::text, $2::text, $3::boolean, $4::integer)"
)


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
    return tuple(
        None if value is None else value.decode(encoding)
        for value in (result.get_value(0, column) for column in range(result.nfields))
    )


def _check(conn: psycopg.Connection, result: pq.abc.PGresult) -> None:
    if result.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        return
    if conn.pgconn.status == pq.ConnStatus.BAD:  # the socket broke: no SQLSTATE, the database is unreachable
        raise psycopg.OperationalError(
            result.get_error_message() or "the connection to the database was lost"
        )
    raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


def handle(
    conn: psycopg.Connection, delivery: Delivery, expected_livemode: bool, tolerance: int = 300
) -> Outcome:
    """Record the event and process it unless an earlier delivery did; one transaction (autocommit conn).

    The database checks the signature again (record_webhook_event); WebhookSecretNotInDatabase when it does
    not verify there although it did here: the database's webhook_secrets lack the secret.
    """
    try:
        with sql_errors():
            event_id, status, outcome, session_id, duplicate = _record(
                conn,
                [delivery.body, delivery.signature, "true" if expected_livemode else "false", str(tolerance)],
            )
    except psycopg.errors.InvalidAuthorizationSpecification as exc:  # SQLSTATE 28000
        reason = (exc.diag.message_primary if exc.diag else None) or str(exc)
        log.error(
            "Stripe event %s verified with STRIPE_WEBHOOK_SECRET but not in the database (%s): add the "
            "secret with `runner webhook secret set` as the database owner",
            delivery.label,
            reason,
        )
        raise WebhookSecretNotInDatabase(
            "the database does not hold this webhook signing secret; retry later"
        ) from None
    result = Outcome(event_id, status, outcome, session_id, duplicate == "t")
    if result.status == "rejected" and not result.duplicate:
        log.warning("Stripe event %s (%s) %s", event_id, delivery.type, result.outcome)  # "rejected: why"
    return result


def record_failure(conn: psycopg.Connection, delivery: Delivery, error: str, tolerance: int = 300) -> None:
    """Mark an event whose processing failed unexpectedly (Stripe's retry processes it again)."""
    try:
        conn.execute(
            "SELECT fail_webhook_event(%s, %s, %s, %s)",
            (delivery.body, delivery.signature, error[:2000], tolerance),
        )
    except Exception as exc:  # noqa: BLE001 - best effort: the 500 already tells Stripe to retry
        log.warning("could not record the failure of event %s: %s", delivery.label, exc)


def replay(conn: psycopg.Connection, event_id: str, expected_livemode: bool) -> Outcome:
    """Process a stored event again (`runner webhook replay`): idempotent, like a redelivery that is not skipped."""
    with sql_errors():
        row = conn.execute(
            "SELECT * FROM process_webhook_event(%s, %s)", (event_id, expected_livemode)
        ).fetchone()
    if row is None:
        raise NotFound(f"no stored webhook event {event_id}")
    return Outcome(event_id, row[0], row[1], str(row[2]) if row[2] else None, False)
