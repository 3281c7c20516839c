"""Email delivery: the outbox sent to a real SMTP server (aiosmtpd) started by the test; SMTP down; retries."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Self

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from runner.errors import ConfigError, JobFailed
from runner.jobs import mail
from runner.jobs import tasks as jobs
from runner.jobs.mail import MailConfig
from tests.conftest import free_port
from tests.jobs.test_jobs import add_sessions, connector

SENDER = "Billing <billing@shop.example>"


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it receives; `refuse` maps a recipient to an SMTP reply."""

    messages: list[email.message.EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"

    def to(self, recipient: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if m["To"] == recipient]


class SmtpServer:
    def __init__(self, port: int | None = None, **kwargs):
        self.port = port or free_port()
        self.inbox = Inbox()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **kwargs)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def config(url: str, **kwargs) -> MailConfig:
    return MailConfig(smtp_url=url, sender=SENDER, **kwargs)


def outbox(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT kind, recipient, status, attempts, last_error, sent_at IS NOT NULL "
        "FROM email_outbox ORDER BY id"
    ).fetchall()


def remind(url: str, project, mail_config: MailConfig) -> jobs.RunResult:
    return jobs.run(connector(url), "remind", project=project, mail=mail_config)


def recipient_of(conn: psycopg.Connection, session_id) -> str:
    return conn.execute(
        "SELECT email FROM payment_checkout_sessions WHERE id = %s", (session_id,)
    ).fetchone()[0]


def test_remind_delivers_one_reminder_with_the_checkout_url(conn, db_url, project, smtp):
    [sid] = add_sessions(
        conn,
        1,
        created="now() - interval '7 hours'",
        checkout_url="https://checkout.stripe.com/c/pay/cs_test_123",
    )
    to = recipient_of(conn, sid)

    result = remind(db_url, project, config(smtp.url))

    assert result.summary().startswith("remind: queued 1, sent 1, retrying 0, failed 0, canceled 0, ")
    [message] = smtp.inbox.messages
    assert message["To"] == to and message["From"] == SENDER
    assert message["Subject"] == "Your Pro checkout is waiting for you"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith(".reminder@shop.example>")
    body = message.get_content()
    assert "https://checkout.stripe.com/c/pay/cs_test_123" in body
    assert "Pro plan\n(29.99 USD)" in body.replace("\r\n", "\n")
    assert smtp.inbox.envelopes == [("billing@shop.example", [to])]
    assert outbox(conn) == [("reminder", to, "sent", 1, None, True)]

    # Later runs (and the send-email job) never send it again.
    assert remind(db_url, project, config(smtp.url)).details["queued"] == 0
    jobs.run(connector(db_url), "send-email", project=project, mail=config(smtp.url))
    assert len(smtp.inbox.messages) == 1


def test_reminder_without_a_stored_url_links_to_app_url(conn, db_url, project, smtp):
    add_sessions(conn, 1, created="now() - interval '10 hours'")
    remind(db_url, project, config(smtp.url, app_url="https://app.example/billing"))
    assert "https://app.example/billing" in smtp.inbox.messages[0].get_content()


def test_verification_email_queued_by_the_webhook_goes_out_through_send_email(
    conn, db_url, project, smtp, make_user
):
    [sid] = add_sessions(conn, 1, created="now() - interval '1 hour'", plan="enterprise")
    conn.execute("UPDATE payment_checkout_sessions SET status = 'completed' WHERE id = %s", (sid,))
    to = recipient_of(conn, sid)
    conn.execute(
        "SELECT enqueue_email('verification', %s, 'verification:' || %s::text, NULL, %s, '{}')",
        (to, sid, sid),
    )

    result = jobs.run(
        connector(db_url), "send-email", project=project, mail=config(smtp.url, app_url="https://app.example")
    )

    assert (result.outcome, result.rows, result.details["sent"]) == ("succeeded", 1, 1)
    [message] = smtp.inbox.to(to)
    assert message["Subject"] == "Payment received: your Enterprise subscription is active"
    assert "Amount: 29.99 USD." in message.get_content()
    assert "https://app.example" in message.get_content()
    assert outbox(conn) == [("verification", to, "sent", 1, None, True)]


def test_smtp_down_keeps_the_mail_and_delivers_it_once_later(conn, db_url, project):
    [sid] = add_sessions(conn, 1, created="now() - interval '7 hours'")
    to = recipient_of(conn, sid)
    down = SmtpServer()  # a free port nobody listens on yet

    with pytest.raises(JobFailed) as caught:
        remind(db_url, project, config(down.url))
    assert f"SMTP server smtp://127.0.0.1:{down.port} unavailable" in str(caught.value)
    assert str(caught.value).endswith("the emails stay queued")
    # Queued, untouched: an outage does not use up the email's attempts.
    assert outbox(conn) == [("reminder", to, "queued", 0, None, False)]
    assert conn.execute("SELECT outcome, error LIKE '%%unavailable%%' FROM job_runs").fetchall() == [
        ("failed", True)
    ]

    with down as server:
        first = jobs.run(connector(db_url), "send-email", project=project, mail=config(server.url))
        second = jobs.run(connector(db_url), "send-email", project=project, mail=config(server.url))
        remind(db_url, project, config(server.url))
    assert (first.rows, second.rows) == (1, 0)
    assert len(server.inbox.to(to)) == 1
    assert outbox(conn) == [("reminder", to, "sent", 1, None, True)]


def test_temporary_failures_are_retried_then_given_up_after_max_attempts(conn, db_url, project, smtp):
    [sid] = add_sessions(conn, 1, created="now() - interval '7 hours'")
    to = recipient_of(conn, sid)
    smtp.inbox.refuse[to] = "451 4.3.0 Mailbox temporarily unavailable"
    settings = config(smtp.url, max_attempts=3, retry_seconds=600)

    for attempt in (1, 2):
        result = remind(db_url, project, settings)
        assert (result.outcome, result.details["retrying"]) == ("succeeded", 1)
        row = conn.execute(
            "SELECT status, attempts, last_error, next_attempt_at - now() FROM email_outbox"
        ).fetchone()
        assert row[:3] == ("queued", attempt, "recipient refused: 451 4.3.0 Mailbox temporarily unavailable")
        assert row[3].total_seconds() > 600 * 2 ** (attempt - 1) - 60  # backoff doubles
        # Not due yet: a run now does not try again.
        assert remind(db_url, project, settings).details["retrying"] == 0
        conn.execute("UPDATE email_outbox SET next_attempt_at = now()")  # time passes

    result = remind(db_url, project, settings)
    assert result.details["failed"] == 1
    assert outbox(conn) == [
        ("reminder", to, "failed", 3, "recipient refused: 451 4.3.0 Mailbox temporarily unavailable", False)
    ]
    del smtp.inbox.refuse[to]
    conn.execute("UPDATE email_outbox SET next_attempt_at = now()")
    after = remind(db_url, project, settings).details
    assert {k: after[k] for k in jobs.EMAIL_COUNTS} == dict.fromkeys(jobs.EMAIL_COUNTS, 0)
    assert smtp.inbox.messages == []


def test_a_permanent_refusal_fails_at_once(conn, db_url, project, smtp):
    [sid] = add_sessions(conn, 1, created="now() - interval '7 hours'")
    to = recipient_of(conn, sid)
    smtp.inbox.refuse[to] = "550 5.1.1 No such user"
    remind(db_url, project, config(smtp.url))
    assert outbox(conn) == [("reminder", to, "failed", 1, "recipient refused: 550 5.1.1 No such user", False)]


def test_a_reminder_for_a_checkout_completed_before_delivery_is_canceled(conn, db_url, project, smtp):
    paid, open_ = add_sessions(conn, 2, created="now() - interval '7 hours'")
    jobs.run(connector(db_url), "remind", project=project, mail=None)  # queued, not sent
    conn.execute("UPDATE payment_checkout_sessions SET status = 'completed' WHERE id = %s", (paid,))

    result = jobs.run(connector(db_url), "send-email", project=project, mail=config(smtp.url))

    assert (result.details["sent"], result.details["canceled"]) == (1, 1)
    got = dict(conn.execute("SELECT checkout_session_id, (status, last_error) FROM email_outbox").fetchall())
    assert got[paid] == ("canceled", "not sent: the checkout session is completed")
    assert got[open_][0] == "sent"
    assert [m["To"] for m in smtp.inbox.messages] == [recipient_of(conn, open_)]


def test_an_email_without_a_template_fails_with_the_reason(conn, db_url, project, smtp):
    conn.execute("SELECT enqueue_email('newsletter', 'a@example.com', 'n:1')")
    jobs.run(connector(db_url), "send-email", project=project, mail=config(smtp.url))
    assert outbox(conn) == [
        (
            "newsletter",
            "a@example.com",
            "failed",
            1,
            "no template sql/emails/newsletter.txt.j2 for emails of kind 'newsletter'",
            False,
        )
    ]


def test_two_senders_at_once_send_each_email_exactly_once(conn, db_url, project, smtp):
    for i in range(40):
        conn.execute(
            "SELECT enqueue_email('verification', %s, %s)", (f"c{i}@example.com", f"verification:{i}")
        )
    counts: list[dict] = []

    def sender():
        with psycopg.connect(db_url, autocommit=True) as c:
            counts.append(mail.deliver(c, project, config(smtp.url)))

    threads = [threading.Thread(target=sender) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(c["sent"] for c in counts) == 40
    assert sorted(m["To"] for m in smtp.inbox.messages) == sorted(f"c{i}@example.com" for i in range(40))
    assert (
        conn.execute("SELECT count(*) FROM email_outbox WHERE status = 'sent' AND attempts = 1").fetchone()[0]
        == 40
    )


def test_login_with_credentials_from_the_url(conn, db_url, project):
    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        seen.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"p@ss:word")

    with SmtpServer(authenticator=authenticator, auth_require_tls=False) as server:
        conn.execute("SELECT enqueue_email('verification', 'a@example.com', 'v:1')")
        good = f"smtp://mailer%40shop.example:p%40ss%3Aword@127.0.0.1:{server.port}"
        jobs.run(connector(db_url), "send-email", project=project, mail=config(good))
        assert len(server.inbox.messages) == 1
    assert seen == [(b"mailer@shop.example", b"p@ss:word")]


# -- configuration -------------------------------------------------------------------------------------
def test_config_from_env():
    got = MailConfig.from_env(
        {
            "SMTP_URL": "smtps://u:p@mail.example.com",
            "MAIL_FROM": "Shop <s@shop.example>",
            "MAIL_MAX_ATTEMPTS": "7",
            "APP_URL": "https://app.example",
        }
    )
    assert (got.max_attempts, got.retry_seconds, got.app_url, got.sender) == (
        7,
        300,
        "https://app.example",
        "Shop <s@shop.example>",
    )
    target = mail.parse_smtp_url(got.smtp_url)
    assert (target.host, target.port, target.implicit_tls, target.username) == (
        "mail.example.com",
        465,
        True,
        "u",
    )
    assert mail.parse_smtp_url("smtp://mail.example.com").port == 587
    assert MailConfig.from_env({"SMTP_URL": "smtp://h"}).sender == mail.default_sender()


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "SMTP_URL is not set"),
        ({"SMTP_URL": "http://mail.example.com"}, "SMTP_URL must look like smtp://"),
        ({"SMTP_URL": "smtp://h:99999"}, "SMTP_URL has an invalid port"),
        ({"SMTP_URL": "smtp://h", "MAIL_FROM": "nobody"}, "MAIL_FROM must be an email address"),
        (
            {"SMTP_URL": "smtp://h", "MAIL_MAX_ATTEMPTS": "0"},
            "MAIL_MAX_ATTEMPTS must be a whole number of at least 1",
        ),
        ({"SMTP_URL": "smtp://h", "MAIL_RETRY_SECONDS": "soon"}, "MAIL_RETRY_SECONDS must be a whole number"),
    ],
)
def test_bad_config_is_one_clear_error(env, message):
    with pytest.raises(ConfigError, match=message):
        MailConfig.from_env(env)


@pytest.mark.parametrize(
    "args, message",
    [
        ("1, 'maybe'", "p_outcome must be sent, retry, permanent or canceled"),
        ("1, 'retry', NULL, 0", "p_max_attempts must be at least 1"),
        ("1, 'retry', NULL, 5, -1", "p_retry_seconds must be 0 or more"),
    ],
)
def test_record_email_attempt_refuses_bad_arguments(conn, args, message):
    conn.execute("SELECT enqueue_email('verification', 'a@example.com', 'v:1')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        conn.execute(f"SELECT record_email_attempt({args})")
    assert outbox(conn) == [("verification", "a@example.com", "queued", 0, None, False)]
