"""Checkout sessions as the API and `runner checkout` see them: create (with Stripe), read, close by hand.

The flow of the reference's create-checkout route, made safe to retry: the database row first
(`get_or_create_checkout_session`), then a Stripe Checkout Session created with an idempotency key derived
from the row id, its Stripe-session generation and the parameters, then `link_stripe_session`. Two requests
racing for one row (or a retry after a lost answer) send the same parameters and so the same key, and
Stripe returns one session to all of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
import stripe
from psycopg.rows import dict_row

from runner import error_log
from runner.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PaymentProviderError,
    RateLimited,
    sql_errors,
)
from runner.payments import stripe_gateway
from runner.settings import Settings

if TYPE_CHECKING:
    from runner.payments.stripe_gateway import StripeSession

log = logging.getLogger(__name__)

PLAN_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
# Stripe accepts expires_at between 30 minutes and 24 hours from now. A retry of the same create request
# (the stripe library's, or the customer's next click) must send the same parameters, since Stripe refuses a
# known idempotency key with others: so the expiry is derived from the row, not from the clock, wherever the
# window allows (see stripe_expires_at). The margins absorb clock skew and the request's own latency.
STRIPE_MIN_EXPIRY = 31 * 60
STRIPE_MAX_EXPIRY = 24 * 3600 - 5 * 60
EXPIRY_ROUNDING = 300
STRIPE_LATE_EXTENSION = STRIPE_MIN_EXPIRY + (24 * 3600 - STRIPE_MAX_EXPIRY)
# Stripe saves a 500 that happened after the work began under its idempotency key and replays it for 24 hours.
# Such a key is spent: the create moves on to the key's next link (`<key>:1`, `<key>:2`, ...), the same for
# every attempt, so a later click still meets the links that succeeded. At most this many links per attempt.
STRIPE_KEY_LINKS = 4

# Functions only: the service's database role may EXECUTE them and has no table privileges
# (sql/functions/privileges.sql).
SESSION_SQL = """
SELECT s.*, t.plan_name, t.stripe_price_id, t.billing_interval, t.amount_minor, t.plan_currency,
       checkout_stripe_session_ids(s.id) AS stripe_session_ids
  FROM get_checkout_session(%s) s
 CROSS JOIN LATERAL checkout_plan_terms(s.subscription_plan, s.plan_price, s.currency) t"""
# Every Stripe session the row has had, oldest first (payment_checkout_stripe_sessions; docs/audit-trail.md).
WITH_STRIPE_IDS = "SELECT s.*, checkout_stripe_session_ids(s.id) AS stripe_session_ids FROM {} s"
GET_OR_CREATE_SQL = "SELECT get_or_create_checkout_session(%s, %s, %s, NULL, 'stripe', %s::jsonb)"
# Stripe's metadata: at most 50 keys of at most 40 characters (no square brackets), values of at most 500.
STRIPE_METADATA_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")
RUNNER_METADATA_KEYS = ("userId", "plan", "checkoutSessionId")


@dataclass(frozen=True)
class CheckoutResult:
    """A checkout ready for the customer: the row (as the API shows it) and where to send them."""

    session: dict[str, Any]
    url: str
    resumed: bool  # the same Stripe session as before (the reference's recovery flow)


def session_json(row: dict[str, Any]) -> dict[str, Any]:
    """A checkout session row in the API's stable field names (documented in the README)."""

    def ts(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None

    return {
        "id": str(row["id"]),
        "userId": str(row["user_id"]),
        "email": row["email"],
        "plan": row["subscription_plan"],
        "amount": str(row["plan_price"]),
        "currency": row["currency"],
        "status": row["status"],
        "provider": row["payment_provider"],
        "stripeSessionId": row["stripe_session_id"],
        "stripeSessionIds": row.get("stripe_session_ids") or [],
        "checkoutUrl": row["checkout_url"] if row["status"] == "pending" else None,
        "attempts": row["attempts"],
        "createdAt": ts(row["created_at"]),
        "expiresAt": ts(row["expires_at"]),
        "completedAt": ts(row["completed_at"]),
        "updatedAt": ts(row["updated_at"]),
        "metadata": row.get("metadata") or {},
    }


def metadata_param(value: Any) -> str | None:
    """The app's metadata from a request as the JSON get_or_create_checkout_session takes; the function
    checks its size, keys and depth (checkout_metadata_problem: 22023, so 400)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest("metadata must be a JSON object")
    return json.dumps(value, separators=(",", ":"))


def stripe_metadata(row: dict[str, Any]) -> dict[str, str]:
    """What the Stripe session carries as metadata: the row's metadata within Stripe's limits (a value that is
    not a string as its JSON text; an entry Stripe would refuse, from a row written before the limits, is left
    out), then the runner's own keys, which the webhook trusts."""
    sent: dict[str, str] = {}
    for key, value in sorted((row.get("metadata") or {}).items()):
        if value is None or key in RUNNER_METADATA_KEYS or not STRIPE_METADATA_KEY.match(key):
            continue
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
        if len(text) <= 500 and len(sent) < 50 - len(RUNNER_METADATA_KEYS):
            sent[key] = text
    return {
        **sent,
        "userId": str(row["user_id"]),
        "plan": row["subscription_plan"],
        "checkoutSessionId": str(row["id"]),
    }


def parse_uuid(value: Any, name: str) -> uuid.UUID:
    """A UUID from user input, or InvalidRequest naming the field."""
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise InvalidRequest(f"{name} must be a UUID") from None


def parse_plan(value: Any) -> str:
    if not isinstance(value, str) or not PLAN_CODE.match(value):
        raise InvalidRequest("plan must be a plan code such as 'pro' (lower-case letters, digits, - and _)")
    return value


def _row(conn: psycopg.Connection, session_id: uuid.UUID) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(SESSION_SQL, (session_id,)).fetchone()
    if row is None:
        raise NotFound(f"unknown checkout session: {session_id}")
    return row


def _get_or_create(
    conn: psycopg.Connection, user_id: uuid.UUID, plan: str, email: str | None, metadata: str | None
) -> dict[str, Any]:
    """The user's pending row for the plan, made if there is none (arguments checked by the parse_ functions)."""
    with sql_errors():
        email = email or _user_email(conn, user_id)
        session_id = conn.execute(GET_OR_CREATE_SQL, (user_id, email, plan, metadata)).fetchone()[0]
        return _row(conn, session_id)


def _user_email(conn: psycopg.Connection, user_id: uuid.UUID) -> str:
    email = conn.execute("SELECT checkout_user_email(%s)", (user_id,)).fetchone()[0]
    if email is None:
        raise NotFound(f"unknown user: {user_id}")
    return email


def stripe_expires_at(created_at: datetime, expires_at: datetime, now: float | None = None) -> int:
    """The Stripe session's expiry for a row, as a Unix time inside the window Stripe accepts (30 min .. 24 h).

    It depends on the row alone, so every attempt for the row sends the same value: the row's deadline,
    capped at 23 h 55 min after the row was made, and when that is less than 31 minutes ahead, 36 minutes
    past it (an open row's deadline is ahead of now, and the cap at most 5 minutes behind). Only a row
    kept open for more than 24 hours (`expiry_hours` over 24) needs the clock: its cap moves in 5-minute steps.
    """
    now = time.time() if now is None else now
    created = int(created_at.timestamp())
    cap = created + STRIPE_MAX_EXPIRY
    if created + 24 * 3600 < now:
        cap = int(now + STRIPE_MAX_EXPIRY) // EXPIRY_ROUNDING * EXPIRY_ROUNDING
    wanted = min(int(expires_at.timestamp()), cap)
    return wanted if wanted >= now + STRIPE_MIN_EXPIRY else wanted + STRIPE_LATE_EXTENSION


def idempotency_key(row: dict[str, Any], generation: int, params: dict[str, Any]) -> str:
    """The Stripe idempotency key of one create request: the row, its Stripe-session generation, and a digest
    of the parameters. Retries with the same parameters share the key, so Stripe makes one session for them.
    If the parameters did change (the row entering its last 31 minutes, a new success URL or price after a
    deploy), the key changes with them, rather than Stripe refusing the row's every later attempt with an
    IdempotencyError."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"checkout-session:{row['id']}:{generation}:{digest[:16]}"


def stripe_params(row: dict[str, Any], settings: Settings, expires_at: int) -> dict[str, Any]:
    """The Checkout Session to create for a row: its price from the plan catalogue, never from the client."""
    if row["stripe_price_id"]:
        line_item: dict[str, Any] = {"price": row["stripe_price_id"], "quantity": 1}
    else:
        line_item = {
            "price_data": {
                "currency": row["plan_currency"],
                "unit_amount": row["amount_minor"],
                "product_data": {"name": row["plan_name"]},
                "recurring": {"interval": row["billing_interval"]},
            },
            "quantity": 1,
        }
    metadata = stripe_metadata(row)
    return {
        "mode": "subscription",
        "line_items": [line_item],
        "customer_email": row["email"],
        "client_reference_id": str(row["id"]),
        "metadata": metadata,
        "subscription_data": {"metadata": metadata},
        "success_url": settings.success_url,
        "cancel_url": settings.cancel_url,
        "expires_at": expires_at,
    }


def _record_stripe_error(
    conn: psycopg.Connection, row: dict[str, Any], message: str, exc: stripe.StripeError, **context: Any
) -> None:
    """One error_logs row (category stripe) for a Stripe error met on a row, with the error's details."""
    error_log.record(
        conn,
        "stripe",
        message,
        checkout_session_id=str(row["id"]),
        user_id=str(row["user_id"]),
        error_type=type(exc).__name__,
        http_status=exc.http_status,
        stripe_code=exc.code,
        request_id=exc.request_id,
        **context,
    )


def _stripe_failed(
    conn: psycopg.Connection, row: dict[str, Any], what: str, exc: stripe.StripeError
) -> PaymentProviderError:
    detail = exc.user_message or str(exc).strip() or type(exc).__name__
    _record_stripe_error(conn, row, f"{what} failed for checkout session {row['id']}: {detail}", exc)
    log.warning("Stripe %s failed for checkout session %s: %s", what, row["id"], detail)
    return PaymentProviderError(
        f"Stripe could not {what} ({type(exc).__name__}); the checkout session {row['id']} is still pending, "
        "try again"
    )


def spent_key(exc: stripe.StripeError) -> bool:
    """A server error that Stripe has saved under the idempotency key (a replay, or one it says not to retry):
    every retry with the key would get that same error for the next 24 hours."""
    headers = {name.lower(): value for name, value in (exc.headers or {}).items()}
    return (exc.http_status or 0) >= 500 and (
        headers.get("idempotent-replayed") == "true" or headers.get("stripe-should-retry") == "false"
    )


def take_stripe_session_quota(conn: psycopg.Connection, row: dict[str, Any], settings: Settings) -> None:
    """Count one more Stripe Checkout Session for the row's user, or raise RateLimited (429, Retry-After)
    when CHECKOUT_RATE_LIMIT of them were created within the last CHECKOUT_RATE_WINDOW seconds; an
    error_logs row (category rate_limit) records the refusal. Counted in the database, under a per-user
    lock: the limit holds across service processes and concurrent requests."""
    limit, window = settings.checkout_rate_limit, settings.checkout_rate_window
    if limit <= 0:
        return
    with sql_errors():
        wait = conn.execute(
            "SELECT take_stripe_session_quota(%s, %s, %s)", (row["user_id"], limit, window)
        ).fetchone()[0]
    if not wait:
        return
    message = (
        f"user {row['user_id']} reached the limit of {limit} Stripe checkout sessions per {window} s "
        f"(checkout session {row['id']}): refused, next allowed in {wait} s"
    )
    error_log.record(
        conn,
        "rate_limit",
        message,
        user_id=str(row["user_id"]),
        checkout_session_id=str(row["id"]),
        limit=limit,
        window_seconds=window,
        retry_after=wait,
    )
    log.warning("%s", message)
    raise RateLimited(
        f"too many new checkout sessions: at most {limit} per {window} seconds; retry in {wait} seconds",
        retry_after=wait,
    )


def create_stripe_session(
    conn: psycopg.Connection,
    client: stripe.StripeClient,
    row: dict[str, Any],
    params: dict[str, Any],
    key: str,
) -> StripeSession:
    """Create the row's Stripe session under `key`, or under its next link when Stripe has saved a server
    error under it (see STRIPE_KEY_LINKS). A session made under a spent key was never shown to anyone."""
    link = 0
    while True:
        linked_key = key if link == 0 else f"{key}:{link}"
        try:
            return stripe_gateway.create_checkout_session(client, params, idempotency_key=linked_key)
        except stripe.StripeError as exc:
            link += 1
            if not spent_key(exc) or link == STRIPE_KEY_LINKS:
                raise _stripe_failed(conn, row, "create the checkout session", exc) from None
            message = (
                f"Stripe saved a server error under idempotency key {linked_key} for checkout session "
                f"{row['id']}: trying the key's next link"
            )
            _record_stripe_error(conn, row, message, exc, idempotency_key=linked_key)
            log.warning("%s (request %s)", message, exc.request_id)


def create_checkout(
    conn: psycopg.Connection,
    stripe_client: stripe.StripeClient | Callable[[], stripe.StripeClient],
    settings: Settings,
    user_id: Any,
    plan: Any,
    email: str | None = None,
    metadata: Any = None,
) -> CheckoutResult:
    """Start or resume the user's checkout for a plan and return the Stripe Checkout URL.

    `metadata` (the app's context, a small JSON object) is stored on the row (merged into it on a resume)
    and sent to Stripe. `conn` must be in autocommit mode: the row is committed before Stripe is called, so
    a Stripe failure leaves it pending (and logged in error_logs) for the next attempt.
    """
    user_id = parse_uuid(user_id, "userId")
    plan = parse_plan(plan)
    metadata = metadata_param(metadata)
    client = stripe_client() if callable(stripe_client) else stripe_client
    row = _get_or_create(conn, user_id, plan, email, metadata)

    if row["stripe_session_id"] and row["checkout_url"]:
        try:
            existing = stripe_gateway.retrieve_checkout_session(client, row["stripe_session_id"])
        except stripe.StripeError as exc:
            raise _stripe_failed(conn, row, "look up the checkout session", exc) from None
        if existing is not None and existing.status == "open":
            return CheckoutResult(session_json(row), row["checkout_url"], resumed=True)
        if existing is not None and existing.status == "complete":
            # Paid, and the webhook has not told us yet: a new session could charge the customer twice.
            raise Conflict(
                f"checkout session {row['id']} is already paid; its confirmation from Stripe is on the way"
            )
        log.info(
            "Stripe session %s of %s is %s: creating a new one",
            row["stripe_session_id"],
            row["id"],
            existing.status if existing else "gone",
        )

    take_stripe_session_quota(conn, row, settings)  # RateLimited (429) before anything is sent to Stripe
    generation = row["stripe_sessions_created"]
    expires_at = stripe_expires_at(row["created_at"], row["expires_at"])
    params = stripe_params(row, settings, expires_at)
    created = create_stripe_session(conn, client, row, params, idempotency_key(row, generation, params))
    if not created.url:
        raise PaymentProviderError(f"Stripe returned checkout session {created.id} without a URL")

    with sql_errors():
        conn.execute(
            "SELECT link_stripe_session(%s, %s, %s, to_timestamp(%s), %s)",
            (row["id"], created.id, created.url, created.expires_at or expires_at, generation),
        )
        row = _row(conn, row["id"])
    if row["status"] != "pending" or not row["checkout_url"]:
        raise Conflict(f"checkout session {row['id']} is {row['status']}; start a new checkout")
    return CheckoutResult(
        session_json(row), row["checkout_url"], resumed=row["stripe_session_id"] != created.id
    )


def start_session(
    conn: psycopg.Connection, user_id: Any, plan: Any, email: str | None = None, metadata: Any = None
) -> dict[str, Any]:
    """The reference's POST /checkout-session: get or create the database row only (no Stripe call)."""
    user_id = parse_uuid(user_id, "userId")
    plan = parse_plan(plan)
    metadata = metadata_param(metadata)
    return session_json(_get_or_create(conn, user_id, plan, email, metadata))


def get_session(
    conn: psycopg.Connection, session_id: Any, user_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """One session; with user_id, only if it is that user's (another user's is reported as not found)."""
    session_id = parse_uuid(session_id, "sessionId")
    with sql_errors():
        row = _row(conn, session_id)
    if user_id is not None and row["user_id"] != user_id:
        raise NotFound(f"unknown checkout session: {session_id}")
    return session_json(row)


def session_for_stripe_session(
    conn: psycopg.Connection, stripe_session_id: Any, user_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """The session that has or had this Stripe session (a replaced one too); with user_id, only that user's."""
    if (
        not isinstance(stripe_session_id, str)
        or not stripe_session_id.strip()
        or len(stripe_session_id) > 255
    ):
        raise InvalidRequest("stripeSessionId must be a Stripe Checkout Session id (cs_...)")
    with sql_errors():
        session_id = conn.execute(
            "SELECT checkout_session_for_stripe_session(%s)", (stripe_session_id,)
        ).fetchone()[0]
        row = _row(conn, session_id) if session_id is not None else None
    if row is None or (user_id is not None and row["user_id"] != user_id):
        raise NotFound(f"no checkout session has Stripe session {stripe_session_id}")
    return session_json(row)


def latest_session(conn: psycopg.Connection, user_id: Any) -> dict[str, Any]:
    """The user's most recent session (the reference's get_latest_checkout_session)."""
    user_id = parse_uuid(user_id, "userId")
    with sql_errors(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(WITH_STRIPE_IDS.format("get_latest_checkout_session(%s)"), (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"no checkout session for user {user_id}")
    return session_json(row)


def set_status(
    conn: psycopg.Connection, session_id: Any, status: Any, user_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """Close a pending session by hand (canceled, expired, failed); refuses anything else."""
    session_id = parse_uuid(session_id, "sessionId")
    if not isinstance(status, str):
        raise InvalidRequest("status must be a string: canceled, expired or failed")
    with sql_errors(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            WITH_STRIPE_IDS.format("set_checkout_session_status(%s, %s, %s)"), (session_id, status, user_id)
        ).fetchone()
    return session_json(row)
