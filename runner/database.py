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


def redact(url: str) -> str:
    """The URL with any password replaced, fit for messages and logs."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


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
        raise DatabaseUnavailable(f"cannot connect to {redact(url)}: {reason}") from None
    except psycopg.ProgrammingError as exc:  # e.g. a malformed URL
        raise DatabaseUnavailable(f"invalid database URL {redact(url)}: {exc}") from None
