"""The Stripe webhook signing secrets the database checks deliveries against (`runner webhook secret ...`).

They live in the owner-only table webhook_secrets (sql/tables/V060__webhook_secrets.sql), kept as HMAC keys:
the service's and the jobs' roles can neither read nor change them, so a stolen database credential cannot
sign an event. Several at once while a secret is rotated (Stripe's "roll secret" keeps the old one valid
for a while): add the new one, then remove the old one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from runner.errors import ConfigError, NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Secret:
    """One stored secret, as people see it: never the secret itself."""

    fingerprint: str
    hint: str
    created_at: datetime | None = None
    added: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"fingerprint": self.fingerprint, "hint": self.hint}
        if self.created_at is not None:
            row["created_at"] = self.created_at.isoformat()
        if self.added is not None:
            row["added"] = self.added
        return row


def _owner_only(exc: psycopg.Error) -> ConfigError:
    return ConfigError(
        "only the database owner may manage webhook secrets (the service's and the jobs' roles "
        f"may not read them): connect as the role that runs `runner apply` ({exc.sqlstate})"
    )


def set_secrets(conn: psycopg.Connection, secrets: Iterable[str]) -> list[Secret]:
    """Add each secret (one transaction); those already stored are reported with added = False."""
    secrets = [s.strip() for s in secrets if s and s.strip()]
    if not secrets:
        raise ConfigError("no webhook signing secret given (pass one, or set STRIPE_WEBHOOK_SECRET)")
    result = []
    try:
        with conn.transaction():
            for secret in secrets:
                fingerprint, hint, added = conn.execute(
                    "SELECT fingerprint, hint, added FROM set_webhook_secret(%s)", (secret,)
                ).fetchone()
                result.append(Secret(fingerprint, hint, added=added))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise _owner_only(exc) from None
    except psycopg.errors.InvalidParameterValue as exc:
        raise ConfigError(exc.diag.message_primary or str(exc)) from None
    return result


def list_secrets(conn: psycopg.Connection) -> list[Secret]:
    """The stored secrets, oldest first."""
    try:
        rows = conn.execute(
            "SELECT fingerprint, hint, created_at FROM webhook_secrets ORDER BY id"
        ).fetchall()
    except psycopg.errors.InsufficientPrivilege as exc:
        raise _owner_only(exc) from None
    return [Secret(*row) for row in rows]


def remove_secret(conn: psycopg.Connection, fingerprint: str) -> None:
    """Remove the secret with this fingerprint (or this secret); NotFound when none matches."""
    try:
        removed = conn.execute("SELECT remove_webhook_secret(%s)", (fingerprint.strip(),)).fetchone()[0]
    except psycopg.errors.InsufficientPrivilege as exc:
        raise _owner_only(exc) from None
    if not removed:
        raise NotFound(f"no webhook secret with fingerprint {fingerprint!r} (`runner webhook secret list`)")


def seed_from_env(conn: psycopg.Connection, secrets: Iterable[str]) -> list[Secret]:
    """On a fresh deployment (no secret stored yet), store STRIPE_WEBHOOK_SECRET's secrets; else nothing.

    Only a connection that may write webhook_secrets (the owner's) does anything: `runner serve` in embedded
    mode calls it before it hands the service a login role of checkout_app.
    """
    secrets = list(secrets)
    if not secrets:
        return []
    can_write = conn.execute(
        "SELECT to_regclass('webhook_secrets') IS NOT NULL "
        "AND has_table_privilege('webhook_secrets', 'INSERT')"
    ).fetchone()[0]
    if not can_write or conn.execute("SELECT EXISTS (SELECT FROM webhook_secrets)").fetchone()[0]:
        return []
    stored = set_secrets(conn, secrets)
    log.info("stored %d webhook signing secret(s) from STRIPE_WEBHOOK_SECRET in the database", len(stored))
    return stored
