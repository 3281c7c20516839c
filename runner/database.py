"""Connections: where the database is (URL, else the embedded server) and opening it with clear errors."""

from __future__ import annotations

import logging
import os
import re
import socket
from typing import TYPE_CHECKING

from runner.errors import DatabaseUnavailable

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 10


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
