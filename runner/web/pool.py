"""The service's connection pool: fails fast on a database that does not answer, recovers at once when it does.

- Every query runs under PostgreSQL's `statement_timeout` (RUNNER_STATEMENT_TIMEOUT): a slow statement is
  cancelled by the server.
- A server that does not answer at all (stopped, a network partition) cannot cancel anything, so each round
  trip also has a deadline on this side (the statement timeout plus ANSWER_GRACE); past it the connection is
  closed and the request answers 503. New connections have libpq's connect_timeout.
- A connection is checked before it is lent when it is suspect (see check_connection), so one the server
  dropped is replaced instead of failing a request.
- Reconnection gives up on an attempt after RECONNECT_SECONDS instead of psycopg_pool's 5 minutes of
  doubling delays: after an outage the next request starts a fresh attempt, which succeeds as soon as the
  server is back (a doubled delay had requests answered 503 for 20 s after the database returned).
"""

from __future__ import annotations

import logging
import math
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool

from runner.database import application_name

log = logging.getLogger(__name__)

# A connection used this recently is lent without a round trip unless its socket says otherwise
# (HikariCP's aliveBypassWindow, which is 0.5 s).
CHECK_IDLE_SECONDS = 1.0
# How long the check of a suspect connection, and /healthz's query, may take: /healthz answers within 2 s.
CHECK_SECONDS = 0.5
# What the client waits beyond statement_timeout for the server's own cancellation to arrive.
ANSWER_GRACE = 1.0
# Without a statement timeout, a round trip still ends after this long.
NO_STATEMENT_TIMEOUT_ANSWER = 60.0
RECONNECT_SECONDS = 2.0
CONNECT_TIMEOUT = 2  # libpq's minimum


class DeadlineConnection(psycopg.Connection):
    """A connection whose every round trip ends within `answer_timeout` seconds: past it the connection is
    closed and the query raises OperationalError (no SQLSTATE: the service maps it to 503)."""

    answer_timeout: float | None = None

    def wait(self, gen, *args, **kwargs):
        if kwargs.get("timeout") is None and self.answer_timeout:
            kwargs["timeout"] = self.answer_timeout
        try:
            return super().wait(gen, *args, **kwargs)
        except psycopg.errors._WaitTimeout:  # psycopg's own wait deadline (an OperationalError)
            limit = kwargs["timeout"]
            self.close()  # a query is in flight: the connection cannot be used again
            raise psycopg.OperationalError(f"the database did not answer within {limit:g} s") from None


class Watchdog:
    """Shuts down the socket of a connection still lent past its deadline (`watch`). For libpq's blocking calls
    (the webhook's one statement, runner/payments/webhook.py), which psycopg's wait deadline does not cover:
    the call returns with the connection broken, the request answers 503, the pool replaces the connection.
    One thread per process, waking every TICK seconds; arming and disarming is a dictionary entry."""

    TICK = 0.1

    def __init__(self):
        self._lock = threading.Lock()
        self._armed: dict[object, tuple[float, psycopg.Connection]] = {}
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, conn: psycopg.Connection, seconds: float) -> Iterator[psycopg.Connection]:
        token = object()
        with self._lock:
            self._armed[token] = (time.monotonic() + seconds, conn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="runner-db-watchdog", daemon=True)
                self._thread.start()
        try:
            yield conn
        finally:
            with self._lock:
                self._armed.pop(token, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK)
            now = time.monotonic()
            with self._lock:  # the owner's `finally` cannot disarm meanwhile: never a socket lent to another
                for token, (deadline, conn) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[token]
                        _cut(conn)


def _cut(conn: psycopg.Connection) -> None:
    try:
        # A duplicate of the descriptor: shutdown() acts on the connection itself, close() on the duplicate only.
        with socket.fromfd(conn.pgconn.socket, socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.shutdown(socket.SHUT_RDWR)
        log.warning("the database did not answer within the deadline: connection cut")
    except (OSError, psycopg.Error) as exc:  # closed meanwhile
        log.debug("could not cut a connection: %s", exc)


class ServicePool(ConnectionPool):
    """psycopg_pool's pool of DeadlineConnections, noting when each connection comes back (for
    `check_connection`). Not a `reset=` callback: that moves every return to the pool's worker thread, a
    thread hand-off per request."""

    def putconn(self, conn: psycopg.Connection) -> None:
        conn._runner_idle_since = time.monotonic()
        super().putconn(conn)


def check_connection(conn: DeadlineConnection) -> None:
    """The pool's check before lending a connection: psycopg_pool's round trip, but only for a suspect
    connection: idle longer than CHECK_IDLE_SECONDS, or with input waiting while idle (the goodbye of a
    server shutting down or of pg_terminate_backend, a reset). Probing every checkout cost one round trip
    per request. A connection that breaks anyway fails its request with a 503 (Stripe retries) and the
    pool replaces it. The probe has its own short deadline: a server that does not answer fails it fast."""
    idle_since = getattr(conn, "_runner_idle_since", None)
    if idle_since is not None and time.monotonic() - idle_since < CHECK_IDLE_SECONDS:
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN)
        if not poller.poll(0):
            return
    with deadline(conn, CHECK_SECONDS):
        ConnectionPool.check_connection(conn)


@contextmanager
def deadline(conn: DeadlineConnection, seconds: float) -> Iterator[DeadlineConnection]:
    """Round trips on `conn` within the block end after `seconds` (instead of the statement timeout's)."""
    usual, conn.answer_timeout = conn.answer_timeout, seconds
    try:
        yield conn
    finally:
        conn.answer_timeout = usual


def answer_timeout(statement_timeout: float) -> float:
    """The client-side deadline of a round trip for a statement timeout (0: none)."""
    return statement_timeout + ANSWER_GRACE if statement_timeout > 0 else NO_STATEMENT_TIMEOUT_ANSWER


def make_pool(
    database_url: str,
    *,
    min_size: int,
    max_size: int,
    timeout: float,
    statement_timeout: float,
    command: str = "serve",
    name: str = "runner-serve",
) -> ServicePool:
    """The service's pool, opened (connections are made in the background)."""
    deadline = answer_timeout(statement_timeout)
    milliseconds = str(math.ceil(statement_timeout * 1000))

    def configure(conn: DeadlineConnection) -> None:
        conn.answer_timeout = deadline
        # set_config, not the `options` connection parameter, which would replace options in DATABASE_URL.
        conn.execute("SELECT pg_catalog.set_config('statement_timeout', %s, false)", (milliseconds,))

    return ServicePool(
        database_url,
        connection_class=DeadlineConnection,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        kwargs={
            "autocommit": True,
            "application_name": application_name(command),
            "connect_timeout": CONNECT_TIMEOUT,
        },
        configure=configure,
        # A connection the database dropped (restart, failover) is replaced before a request gets it;
        # one in steady use is not probed (see check_connection).
        check=check_connection,
        reconnect_timeout=RECONNECT_SECONDS,
        name=name,
        open=True,
    )
