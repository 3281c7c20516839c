"""Fuzz every `runner` command in-process (click's CliRunner) with random and hostile arguments: unknown
options, wrong types, absurd numbers, odd Unicode (NUL, lone surrogates, RTL, emoji), empty and huge values.

Whatever the arguments, a command ends with a documented exit code (0-6), never with a traceback, and
neither its output nor a log line shows a secret (database and SMTP passwords, Stripe key, tokens).
`serve` and `schedule` are bounded: serve always gets a bad --port (it must refuse before serving),
schedule always ends with --duration 0.3. Example counts: RELIABILITY_SCALE (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import uuid

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from psycopg.conninfo import make_conninfo

from runner.cli import cli
from tests.conftest import REPO
from tests.fake_stripe import API_KEY
from tests.payments_support import JWT_SECRET, SERVICE_TOKEN, WEBHOOK_SECRET, checkout_event, new_session
from tests.reliability_support import DB_PASSWORD, NASTY, budget, leaks, nasty_text

EXIT_CODES = {0, 1, 2, 3, 4, 5, 6}  # README "Exit codes"
SMTP_PASSWORD = "smtp-password-never-shown-91b2"
REPORT_PARAMS = [
    "days=7",
    "days=-1",
    "days=99999999999999999999",
    "limit=0",
    "topic=x",
    "hours=1e9",
    "min_age=1 hour",
    "min_age=forever",
    "pending_age=\x00",
    "nope=1",
    "=",
    "days",
]
# Each command with the words it knows; the fuzzer mixes them with hostile text.
COMMANDS: dict[tuple[str, ...], list[str]] = {
    ("apply",): ["--dry-run", "--check", "--format", "json", "--lock-timeout", "0", "-1", "nan"],
    ("status",): ["--format", "json", "text", "xml"],
    ("verify",): ["--format", "json"],
    ("compile",): [
        "V003__payment_checkout_sessions",
        "sql/functions/complete_checkout_session.sql",
        "complete_checkout_session",
        "../../etc/passwd",
        "V999__nope",
    ],
    ("baseline",): ["V999__nope", "sql/tables/V999__x.sql", "--lock-timeout", "0"],
    ("db", "start"): [],
    ("report", "list"): ["--format", "json", "table"],
    ("report", "conversion_rate"): ["--param", "-p", *REPORT_PARAMS, "--format", "csv", "json", "table"],
    ("report", "recent_webhooks"): ["-p", *REPORT_PARAMS, "--format", "json"],
    ("report", "stuck_sessions"): ["-p", *REPORT_PARAMS, "--format", "csv"],
    ("report", "no_such_report"): ["--format", "json"],
    ("doctor",): ["--fail-on", "warn", "never", "fail", "--format", "json"],
    ("dashboard",): ["-o", "-", "out.html", "--output", "", ".", "x" * 300],
    ("job", "expire"): ["--batch-size", "1", "0", "-5", "1e9", "--dry-run", "--format", "json"],
    ("job", "remind"): ["--dry-run", "--no-send", "--format", "json"],
    ("job", "cleanup"): [
        "--batch-size",
        "10",
        "--retention-days",
        "0",
        "1",
        "36500",
        "99999999999",
        "--dry-run",
    ],
    ("job", "send-email"): ["--dry-run", "--format", "json"],
    ("job", "list"): ["--format", "json"],
    ("job", "history"): ["expire", "remind", "nope", "--limit", "1", "0", "--format", "json"],
    ("checkout", "create"): ["--user-id", "--plan", "pro", "basic", "gold", "--format", "json"],
    ("webhook", "replay"): ["evt_fuzz_stored", "evt_missing", "--format", "json"],
    ("schedule",): ["--job", "expire", "cleanup", "--run-now", "--max-runs", "1", "0"],
    ("serve",): ["--host", "--workers", "0", "4", "--log-format", "json"],
}
BOUNDED = {("schedule",): ["--duration", "0.3", "--max-runs", "2"], ("serve",): ["--port", "not-a-port"]}


@pytest.fixture
def cli_env(db_url, conn, make_user, fake_stripe):
    """A database with a user, a pending session and a stored event; the environment of a configured host."""
    user = make_user("cli-fuzz@example.com")
    row = new_session(conn, user)
    conn.execute(
        "INSERT INTO webhook_events (stripe_event_id, topic, payload) VALUES ('evt_fuzz_stored', "
        "'checkout.session.completed', %s::jsonb)",
        (checkout_event("completed", row),),
    )
    env = {
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_API_BASE": fake_stripe.url,
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        "STRIPE_TIMEOUT": "5",
        "SERVICE_TOKEN": SERVICE_TOKEN,
        "JWT_SECRET": JWT_SECRET,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SMTP_URL": f"smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:1",
        "SMTP_TIMEOUT": "2",
        "PGCONNECT_TIMEOUT": "3",
        "DATABASE_URL": None,
        "RUNNER_PROJECT_DIR": None,
    }
    return {"url": make_conninfo(db_url, password=DB_PASSWORD), "env": env, "user": str(user)}


def as_argv(word: str) -> str:
    """A word as a process would receive it: no NUL (argv is C strings), undecodable bytes as surrogates
    (Python's surrogateescape), so a lone surrogate arrives as its escaped UTF-8 bytes."""
    return os.fsdecode(word.replace("\x00", "").encode("utf-8", "surrogatepass"))


def invoke(cli_env, args: list[str], caplog) -> None:
    args = [as_argv(a) for a in args]
    if args[0] == "dashboard":
        # The only command that writes a file: keep every path it could be given inside the sandbox
        # (the tests may run as root; "../../etc/passwd" once meant /etc/passwd).
        args = [a.replace("/", "_").replace("..", "__") for a in args]
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as sandbox, contextlib.chdir(sandbox):
        result = runner.invoke(
            cli, ["--database-url", cli_env["url"], "--project-dir", str(REPO), *args], env=cli_env["env"]
        )
    output = result.output
    assert result.exit_code in EXIT_CODES, (args, result.exit_code, output[-2000:])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        repr(result.exception),
        output[-2000:],
    )
    found = [s for s in leaks(output) if s != "traceback"] + (["traceback"] if "Traceback" in output else [])
    found += [SMTP_PASSWORD] if SMTP_PASSWORD in output else []
    assert not found, (args, found, output[-2000:])
    for record in caplog.records:
        message = record.getMessage()
        assert record.exc_info is None, (args, message)
        assert not leaks(message) and SMTP_PASSWORD not in message, (args, message[:500])
    caplog.clear()


word = st.one_of(
    nasty_text,
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["--help", "-h", "--format", "--", "-", "--version", "-v"]),
)


@budget(80)
@given(data=st.data())
def test_every_command_with_hostile_arguments(cli_env, caplog, data):
    caplog.set_level(logging.INFO)
    command = data.draw(st.sampled_from(sorted(COMMANDS)), label="command")
    vocabulary = COMMANDS[command] + (
        ["--user-id", cli_env["user"]] if command == ("checkout", "create") else []
    )
    words = st.one_of(st.sampled_from(vocabulary), word) if vocabulary else word
    args = [*command, *data.draw(st.lists(words, max_size=6), label="args"), *BOUNDED.get(command, [])]
    invoke(cli_env, args, caplog)


@pytest.mark.parametrize("command", sorted(COMMANDS), ids=" ".join)
def test_every_command_with_each_nasty_word(cli_env, caplog, command):
    """Each command once per kind of hostile word, as its argument or option value (no randomness)."""
    caplog.set_level(logging.INFO)
    options = [
        w
        for w in COMMANDS[command]
        if w.startswith("-") and w not in ("--dry-run", "--check", "--run-now", "--no-send")
    ][:1]
    for nasty in NASTY[::3] + [str(10**30), "-1"]:
        args = [*command, *options, nasty, *BOUNDED.get(command, [])]
        invoke(cli_env, args, caplog)


@pytest.mark.parametrize(
    "url",
    [
        "host=127.0.0.1 port=1 password={p} dbname=x",
        "host=127.0.0.1 port=1 password='{p} with space' dbname=x",
        "postgresql://u:{p}@127.0.0.1:1/x",
        "postgresql://u:a/{p}@127.0.0.1:1/x",
        "postgresql://u:a@{p}@127.0.0.1:1/x",
        "postgresql://127.0.0.1:1/x?password={p}",
        "postgresql://u:{p}@[broken/x",
        "password={p} not-a-pair",
        "host=127.0.0.1 port=not-a-port password={p}",
    ],
    ids=[
        "conninfo",
        "quoted",
        "url",
        "slash",
        "at sign",
        "query",
        "broken url",
        "broken conninfo",
        "bad port",
    ],
)
def test_database_password_never_shown(url, caplog):
    """A regression the fuzzer found: `Error: cannot connect to ...` repeated conninfo passwords verbatim."""
    password = "pw-" + uuid.uuid4().hex
    result = CliRunner().invoke(
        cli,
        ["--database-url", url.format(p=password), "status"],
        env={"PGCONNECT_TIMEOUT": "3", "DATABASE_URL": None},
    )
    assert result.exit_code == 1 and result.output.startswith("Error: "), result.output
    assert password not in result.output and password.removeprefix("pw-") not in result.output, result.output
    assert password not in caplog.text


@pytest.mark.parametrize("where", ["empty", "a missing folder"])
def test_dashboard_to_an_unwritable_path_is_one_error_line(cli_env, tmp_path, where):
    """A regression the fuzzer found: `runner dashboard -o ''` (or into a missing folder) ended in a traceback."""
    output = "" if where == "empty" else str(tmp_path / "missing" / "x.html")
    runner = CliRunner()
    with contextlib.chdir(tmp_path):
        result = runner.invoke(
            cli,
            ["--database-url", cli_env["url"], "--project-dir", str(REPO), "dashboard", "-o", output],
            env=cli_env["env"],
        )
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (
        result.exception,
        result.output,
    )
    assert result.output.startswith(f"Error: cannot write the dashboard to '{output}': "), result.output
