"""Connections: where the database is (URL, else the embedded server) and opening it with clear errors."""

from __future__ import annotations

import logging
import math
import os
import re
import socket
from typing import TYPE_CHECKING

from runner.errors import DatabaseUnavailable

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 10
# The jobs work in short batches (about 0.25 s each): a statement of theirs still running after this many
# seconds is stuck on something (a lock, a runaway plan) and PostgreSQL cancels it (RUNNER_JOB_STATEMENT_TIMEOUT).
DEFAULT_JOB_STATEMENT_TIMEOUT = 300.0


# user:password@ of a URL, up to the last @ (a password may hold / or @); password=... of a conninfo
# string or a URL's query, quoted or not.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:@/\s\"]*:)[^\s\"]*@", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"""(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&'"]*)""", re.IGNORECASE)
# libpq quoting a host that is the rest of a password holding an unencoded @: 'rest@host'
_QUOTED_REST = re.compile(r"""(['"])[^'"\s@]*@""")


def redact(text: str, url: str | None = None) -> str:
    """`text` (a URL, a conninfo string or a message quoting one) with every password replaced by ***,
    fit for messages and logs. With `url`, its password is also removed wherever `text` repeats it."""
    text = _KEYWORD_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))
    text = _QUOTED_REST.sub(r"\1***@", text)
    try:
        from psycopg.conninfo import conninfo_to_dict

        password = conninfo_to_dict(url or "").get("password") if url else None
    except Exception:  # noqa: BLE001 - a malformed URL: the patterns above are all there is
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text


def application_name(command: str) -> str:
    """A name for pg_stat_activity that tells an operator who holds a lock."""
    return f"runner {command} (pid {os.getpid()} on {socket.gethostname()})"[:63]


def connect(url: str, *, command: str = "runner", autocommit: bool = True) -> psycopg.Connection:
    """Open a connection, turning any failure to reach the server into one clear DatabaseUnavailable."""
    import psycopg

    timeout = int(os.environ.get("PGCONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT))
    try:
        return psycopg.connect(
            url,
            autocommit=autocommit,
            connect_timeout=timeout,
            application_name=application_name(command),
        )
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        raise DatabaseUnavailable(redact(f"cannot connect to {url}: {reason}", url)) from None
    except psycopg.ProgrammingError as exc:  # e.g. a malformed URL; libpq's message may quote all of it
        raise DatabaseUnavailable(redact(f"invalid database URL {url}: {exc}", url)) from None


def job_statement_timeout() -> float:
    """RUNNER_JOB_STATEMENT_TIMEOUT in seconds (0: none); ConfigError naming it when it is not a number >= 0."""
    from runner.errors import ConfigError

    raw = os.environ.get("RUNNER_JOB_STATEMENT_TIMEOUT", "").strip()
    try:
        seconds = float(raw) if raw else DEFAULT_JOB_STATEMENT_TIMEOUT
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise ConfigError(f"RUNNER_JOB_STATEMENT_TIMEOUT must be a number of seconds (0: none), got {raw!r}")
    return seconds


def set_statement_timeout(conn: psycopg.Connection, seconds: float) -> None:
    """PostgreSQL cancels this session's statements after `seconds` (0: never); SQLSTATE 57014 when it does."""
    conn.execute(
        "SELECT pg_catalog.set_config('statement_timeout', %s, false)", (str(math.ceil(seconds * 1000)),)
    )
