"""Delivering the email outbox over SMTP, with templates from the SQL project (sql/emails/<kind>.txt.j2).

Each email is claimed, sent and marked in **one transaction**: the row is locked (FOR UPDATE SKIP LOCKED,
so two senders never pick the same email), the SMTP server accepts it, then the row is marked sent and the
transaction commits. Delivery is therefore *at least once*: if the process dies or loses the database in
the instant between the server's "250 OK" and the commit, the email is still queued and is sent again by
the next run. The alternative (mark, commit, then send) is at most once and silently loses mail whenever a
send fails after the commit. A lost verification or reminder email costs more than a rare duplicate, and
the duplicate carries the same Message-ID (derived from the outbox row), so mail systems can recognise it.

A server that cannot be reached (or refuses the login) fails the run and leaves every email as it was:
an outage does not use up the emails' attempts. A server that answers with a temporary error (4xx) for an
email queues it again with exponential backoff, until MAIL_MAX_ATTEMPTS attempts, then marks it 'failed';
a permanent error (5xx) marks it 'failed' at once.
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from runner.errors import ConfigError, MailError, TemplateError

if TYPE_CHECKING:
    import psycopg

    from runner.project import Project

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_RETRY_SECONDS = 300
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class MailConfig:
    """Where and how to send: from SMTP_URL, MAIL_FROM, MAIL_MAX_ATTEMPTS, MAIL_RETRY_SECONDS, APP_URL."""

    smtp_url: str
    sender: str
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_seconds: int = DEFAULT_RETRY_SECONDS
    app_url: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MailConfig:
        """Read and check the configuration; a missing SMTP_URL or a bad value is a ConfigError."""
        env = os.environ if env is None else env
        smtp_url = env.get("SMTP_URL", "").strip()
        if not smtp_url:
            raise ConfigError(
                "SMTP_URL is not set (e.g. smtp://user:password@mail.example.com:587); "
                "queued emails stay queued until it is"
            )
        parse_smtp_url(smtp_url)
        sender = env.get("MAIL_FROM", "").strip() or default_sender()
        if "@" not in parseaddr(sender)[1]:
            raise ConfigError(f"MAIL_FROM must be an email address, got {sender!r}")
        return cls(
            smtp_url=smtp_url,
            sender=sender,
            max_attempts=_int_env(env, "MAIL_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, minimum=1),
            retry_seconds=_int_env(env, "MAIL_RETRY_SECONDS", DEFAULT_RETRY_SECONDS, minimum=0),
            app_url=env.get("APP_URL", "").strip() or None,
            timeout=float(_int_env(env, "SMTP_TIMEOUT", int(DEFAULT_TIMEOUT), minimum=1)),
        )


def default_sender() -> str:
    return f"checkout-sessions@{socket.getfqdn()}"


def _int_env(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigError(f"{name} must be a whole number of at least {minimum}, got {raw!r}")
    return value


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None

    def __str__(self) -> str:
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpTarget:
    """smtp://user:pass@host:587 (STARTTLS when offered) or smtps://user:pass@host:465 (implicit TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError("SMTP_URL must look like smtp://user:password@host:587 or smtps://host:465")
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 587)
    except ValueError:
        raise ConfigError("SMTP_URL has an invalid port") from None
    return SmtpTarget(
        host=parts.hostname,
        port=port,
        implicit_tls=parts.scheme == "smtps",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


class Smtp:
    """One SMTP connection, opened on first use and reopened after the server drops it."""

    def __init__(self, config: MailConfig):
        self.config = config
        self.target = parse_smtp_url(config.smtp_url)
        self._client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        t = self.target
        try:
            if t.implicit_tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    t.host, t.port, timeout=self.config.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(t.host, t.port, timeout=self.config.timeout)
            client.ehlo()
            if not t.implicit_tls and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if t.username:
                client.login(t.username, t.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(
                f"SMTP server {t} unavailable: {_describe(exc)}; the emails stay queued"
            ) from None
        return client

    def send(self, message: EmailMessage) -> None:
        if self._client is None:
            self._client = self._connect()
        try:
            self._client.send_message(message)
        except smtplib.SMTPServerDisconnected:
            self._client = None
            raise

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.quit()
            except (OSError, smtplib.SMTPException):
                pass
            self._client = None


# -- templates -----------------------------------------------------------------------------------------
def render(project: Project, email: dict[str, Any], config: MailConfig) -> EmailMessage:
    """Render sql/emails/<kind>.txt.j2 (first line `Subject: ...`, a blank line, the body) for one email."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(project.sql_dir / "emails")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    name = f"{email['kind']}.txt.j2"
    session = None
    if email.get("session_status") is not None:
        session = {
            "id": str(email["checkout_session_id"]),
            "status": email["session_status"],
            "subscription_plan": email["subscription_plan"],
            "plan_price": email["plan_price"],
            "currency": (email["currency"] or project.settings.get("default_currency", "")).strip().upper(),
            "expires_at": _utc(email["session_expires_at"]),
            "completed_at": _utc(email["completed_at"]),
        }
    context = email.get("context") or {}
    variables = {
        "recipient": email["recipient"],
        "context": context,
        "session": session,
        "app_url": config.app_url,
        # Recovery link: the Stripe Checkout URL stored on the session, else the app's own page.
        "checkout_url": email.get("checkout_url") or context.get("checkout_url") or config.app_url,
    }
    try:
        text = env.get_template(name).render(variables)
    except jinja2.TemplateNotFound:
        raise TemplateError(f"no template sql/emails/{name} for emails of kind {email['kind']!r}") from None
    except (jinja2.TemplateError, KeyError, TypeError) as exc:
        raise TemplateError(f"sql/emails/{name}: {exc}") from None
    first, _, body = text.lstrip("\n").partition("\n")
    if not first.startswith("Subject:"):
        raise TemplateError(f"sql/emails/{name}: the first line must be 'Subject: ...'")
    message = EmailMessage()
    message["Subject"] = first.removeprefix("Subject:").strip()
    message["From"] = config.sender
    message["To"] = email["recipient"]
    message["Date"] = formatdate(localtime=False, usegmt=True)
    # Stable across retries: a duplicate from the at-least-once window carries the same id.
    domain = parseaddr(config.sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = f"<outbox-{email['id']}.{email['kind']}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body.lstrip("\n"))
    return message


# -- delivery ------------------------------------------------------------------------------------------
def deliver(
    conn: psycopg.Connection,
    project: Project,
    config: MailConfig,
    *,
    limit: int | None = None,
    on_email: Callable[[str, float], None] | None = None,
) -> dict[str, int]:
    """Send every email due now (each at most once per call); returns counts by new status.

    Raises MailError when the server cannot be reached; what was sent before stays sent."""
    from psycopg.rows import dict_row

    counts = {"sent": 0, "retrying": 0, "failed": 0, "canceled": 0}
    as_of = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    smtp = Smtp(config)
    try:
        while limit is None or sum(counts.values()) < limit:
            started = time.monotonic()
            with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                email = cur.execute("SELECT * FROM claim_due_email(%s)", (as_of,)).fetchone()
                if email is None:
                    break
                outcome, error = _attempt(smtp, project, config, email)
                status = cur.execute(
                    "SELECT record_email_attempt(%s, %s, %s, %s, %s) AS status",
                    (email["id"], outcome, error, config.max_attempts, config.retry_seconds),
                ).fetchone()["status"]
            key = "retrying" if status == "queued" else status
            counts[key] += 1
            level = logging.INFO if status in ("sent", "canceled") else logging.WARNING
            log.log(
                level,
                "email %s (%s to %s): %s%s",
                email["id"],
                email["kind"],
                email["recipient"],
                key,
                f": {error}" if error else "",
            )
            if on_email is not None:
                on_email(key, time.monotonic() - started)
    finally:
        smtp.close()
    return counts


def _attempt(
    smtp: Smtp, project: Project, config: MailConfig, email: dict[str, Any]
) -> tuple[str, str | None]:
    """Try one email: ('sent'|'retry'|'permanent'|'canceled', error). MailError propagates (run fails)."""
    if email["kind"] == "reminder":
        reason = _reminder_obsolete(email)
        if reason:
            return "canceled", reason
    try:
        message = render(project, email, config)
    except TemplateError as exc:
        return "permanent", str(exc)
    try:
        smtp.send(message)
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        return _by_code(code, f"recipient refused: {code} {_decode(text)}")
    except smtplib.SMTPResponseException as exc:
        return _by_code(exc.smtp_code, f"{exc.smtp_code} {_decode(exc.smtp_error)}")
    except (smtplib.SMTPException, OSError) as exc:
        smtp.close()
        return "retry", _describe(exc)
    return "sent", None


def _reminder_obsolete(email: dict[str, Any]) -> str | None:
    status = email.get("session_status")
    if status is None:
        return "not sent: the checkout session no longer exists"
    if status != "pending":
        return f"not sent: the checkout session is {status}"
    expires_at = email.get("session_expires_at")
    if expires_at is not None and expires_at <= datetime.now(UTC):
        return "not sent: the checkout session has expired"
    return None


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _by_code(code: int, error: str) -> tuple[str, str]:
    return ("permanent" if 500 <= code < 600 else "retry"), error


def _decode(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _describe(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
