"""Writing to the reference's error_logs table, which support reads by category (stripe, webhook, database, ...).

Database failures are the awkward category: when the database is down, error_logs is down with it, and in a
storm every request fails. `DatabaseErrors` counts them instead (by kind and SQLSTATE) and writes one row per
kind with the count, once the database answers again and at most once per interval, so the reference's
`SELECT * FROM error_logs WHERE category = 'database'` tells what the service and the jobs went through.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import CONNECTION_STATES, DatabaseUnavailable, first_line

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

DATABASE = "database"
# How often a process writes its tally of database failures (the first one goes out as soon as it can).
DATABASE_INTERVAL_SECONDS = 60.0
# Kinds of database failure (the `kind` of a database row's context).
CONNECTION, TIMEOUT, SERIALIZATION, SQL = "connection", "timeout", "serialization", "sql"
# Cancelled by a timeout (statement_timeout, lock_timeout, idle_in_transaction_session_timeout).
_TIMEOUT_STATES = frozenset({"57014", "55P03", "25P03"})
_SERIALIZATION_STATES = frozenset({"40001", "40P01"})
# A caller's bad input (the SQL functions' documented errors), not a database failure.
_USER_ERROR_CLASSES = ("22", "23", "P0")
MAX_KINDS = 50  # distinct (kind, SQLSTATE) pairs tallied at once; the rest are counted under the last


def record(conn: psycopg.Connection, category: str, message: str, **context: Any) -> None:
    """Insert one error_logs row. Never raises: failing to log must not hide the error being logged."""
    try:
        conn.execute(
            "SELECT log_error(%s, %s, %s::jsonb)",
            (category, message, json.dumps(context, default=str)),
        )
    except Exception as exc:  # noqa: BLE001 - the database may be the very thing that failed
        log.warning("could not write error_logs (%s: %s): %s", category, message, exc)


def database_failure(exc: BaseException) -> tuple[str, str | None] | None:
    """(kind, SQLSTATE) when `exc` is a database failure (connection lost, timeout, serialization failure,
    failed SQL); None when it is something else, a caller's bad input included."""
    import psycopg
    from psycopg_pool import PoolTimeout

    if isinstance(exc, DatabaseUnavailable):
        cause = exc.__cause__
        return CONNECTION, getattr(cause, "sqlstate", None)
    if isinstance(exc, PoolTimeout):
        return TIMEOUT, None
    if not isinstance(exc, psycopg.Error):
        return None
    state = exc.sqlstate
    if state is None or state.startswith("08") or state in CONNECTION_STATES:  # None: the socket broke
        return CONNECTION, state
    if state in _TIMEOUT_STATES:
        return TIMEOUT, state
    if state in _SERIALIZATION_STATES:
        return SERIALIZATION, state
    if state.startswith(_USER_ERROR_CLASSES):
        return None
    return SQL, state


def _first_line(exc: BaseException) -> str:
    return first_line(exc)[:500]


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class _Tally:
    count: int
    first_seen: float
    last_seen: float
    sample: str


class DatabaseErrors:
    """Database failures one process saw, counted per (kind, SQLSTATE), written to error_logs (category
    database) as one row per kind with its count: the first as soon as `flush` can write it, then at most one
    per `interval` seconds. Thread-safe; `flush` never raises and keeps the counts when it cannot write."""

    def __init__(self, where: str, interval: float = DATABASE_INTERVAL_SECONDS):
        self.where = where
        self.interval = interval
        self._lock = threading.Lock()
        self._tallies: dict[tuple[str, str, str | None], _Tally] = {}  # (where, kind, SQLSTATE)
        self._last_written: float | None = None  # time.monotonic() of the last row written

    def note(self, exc: BaseException) -> bool:
        """Count `exc` if it is a database failure; True when it was one."""
        failure = database_failure(exc)
        if failure is None:
            return False
        self._add((self.where, *failure), _Tally(1, time.time(), time.time(), _first_line(exc)))
        return True

    def _add(self, key: tuple[str, str, str | None], new: _Tally) -> None:
        with self._lock:
            if key not in self._tallies and len(self._tallies) >= MAX_KINDS:
                key = next(reversed(self._tallies))
            old = self._tallies.get(key)
            if old is None:
                self._tallies[key] = new
            else:
                self._tallies[key] = _Tally(
                    old.count + new.count,
                    min(old.first_seen, new.first_seen),
                    max(old.last_seen, new.last_seen),
                    old.sample,
                )

    @property
    def pending(self) -> int:
        """How many failures are counted and not yet written."""
        with self._lock:
            return sum(t.count for t in self._tallies.values())

    def seconds_until_due(self) -> float:
        """How long until `flush` may write again (0: now)."""
        if self._last_written is None:
            return 0.0
        return max(0.0, self.interval - (time.monotonic() - self._last_written))

    def flush(self, conn: psycopg.Connection, force: bool = False) -> int:
        """Write the counted failures (one error_logs row per kind) if the interval has passed (or `force`);
        returns how many rows were written. On a failure to write, the counts are kept for the next call."""
        with self._lock:
            if not self._tallies or (not force and self.seconds_until_due() > 0):
                return 0
            tallies, self._tallies = self._tallies, {}
        written = 0
        try:
            for key, tally in tallies.items():
                conn.execute(
                    "SELECT log_error(%s, %s, %s::jsonb)",
                    (DATABASE, _message(key, tally), json.dumps(_context(key, tally))),
                )
                written += 1
        except Exception as exc:  # noqa: BLE001 - still unreachable: keep counting
            log.warning(
                "could not write %d database failure(s) to error_logs yet: %s",
                sum(t.count for t in tallies.values()),
                _first_line(exc),
            )
            self._restore(list(tallies.items())[written:])
            return written
        finally:
            if written:
                self._last_written = time.monotonic()
        return written

    def _restore(self, tallies: list[tuple[tuple[str, str, str | None], _Tally]]) -> None:
        for key, tally in tallies:
            self._add(key, tally)

    # A one-shot process (a job) cannot wait for the database to come back: what it could not write goes to a
    # spool file, and the next run that reaches the database writes it (runner/jobs/tasks.py).
    def save(self, path: Path) -> None:
        """Append the counted failures to the spool file at `path` (and forget them here)."""
        with self._lock:
            tallies, self._tallies = self._tallies, {}
        if not tallies:
            return
        entries = [
            {
                "where": where,
                "kind": kind,
                "sqlstate": state,
                "count": t.count,
                "first_seen": t.first_seen,
                "last_seen": t.last_seen,
                "sample": t.sample,
            }
            for (where, kind, state), t in tallies.items()
        ]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _locked(path) as spool:
                spool.seek(0, os.SEEK_END)
                spool.write("".join(json.dumps(e) + "\n" for e in entries))
        except OSError as exc:
            log.warning(
                "%d database failure(s) lost: cannot write %s: %s",
                sum(t.count for t in tallies.values()),
                path,
                exc,
            )

    def take(self, path: Path) -> None:
        """Count what the spool file at `path` holds (and empty it), to be written by the next `flush`."""
        try:
            with _locked(path, create=False) as spool:  # no file: nothing spooled
                lines = spool.read().splitlines()
                spool.seek(0)
                spool.truncate()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot read the database failures spooled in %s: %s", path, exc)
            return
        for line in lines:
            try:
                e = json.loads(line)
                self._add(
                    (e["where"], e["kind"], e["sqlstate"]),
                    _Tally(int(e["count"]), float(e["first_seen"]), float(e["last_seen"]), str(e["sample"])),
                )
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring a damaged line of %s", path)


@contextmanager
def _locked(path: Path, create: bool = True):
    """The spool file, open for reading and writing under an exclusive lock (two jobs may end at once)."""
    import fcntl

    fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    with os.fdopen(fd, "r+", encoding="utf-8") as spool:
        fcntl.flock(spool, fcntl.LOCK_EX)
        yield spool


def spool_path(database_url: str) -> Path:
    """Where jobs keep the database failures they could not write, one file per database (so a failure is
    written to the database it happened with): RUNNER_ERROR_SPOOL (a folder), else
    $XDG_STATE_HOME/runner (~/.local/state/runner), file database-errors-<digest of host, port, database>.jsonl."""
    import hashlib

    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(database_url)
    except Exception:  # noqa: BLE001 - an unparsable URL fails at connect, with its own message
        info = {"url": database_url}
    where = json.dumps([str(info.get(k, "")) for k in ("host", "port", "dbname", "url")])
    folder = os.environ.get("RUNNER_ERROR_SPOOL") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state"), "runner"
    )
    return (
        Path(folder).expanduser() / f"database-errors-{hashlib.sha256(where.encode()).hexdigest()[:16]}.jsonl"
    )


def _message(key: tuple[str, str, str | None], tally: _Tally) -> str:
    where, kind, state = key
    what = {
        CONNECTION: "database unreachable",
        TIMEOUT: "database timeout",
        SERIALIZATION: "serialization failure",
        SQL: "SQL failed",
    }.get(kind, kind)
    code = f" [SQLSTATE {state}]" if state else ""
    times = "once" if tally.count == 1 else f"{tally.count} times"
    return f"{where}: {what}{code} {times} between {_iso(tally.first_seen)} and {_iso(tally.last_seen)}: {tally.sample}"


def _context(key: tuple[str, str, str | None], tally: _Tally) -> dict[str, Any]:
    where, kind, state = key
    return {
        "kind": kind,
        "sqlstate": state,
        "count": tally.count,
        "first_seen": _iso(tally.first_seen),
        "last_seen": _iso(tally.last_seen),
        "where": where,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "sample": tally.sample,
    }


class BackgroundWriter:
    """Writes a `DatabaseErrors` from a timer thread of its own, so no request pays for it: armed by the first
    failure noted, it writes when the interval allows and `connect()` gives a connection, and tries again
    every `retry` seconds while the database stays away. For long-running processes (`runner serve`)."""

    def __init__(self, errors: DatabaseErrors, connect, retry: float = 5.0):
        self.errors = errors
        self._connect = connect  # () -> a context manager giving a connection (a pool's .connection)
        self.retry = retry
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closed = False

    def note(self, exc: BaseException) -> None:
        """Count `exc` if it is a database failure, and make sure a write is on its way."""
        if self.errors.note(exc):
            self._arm(self.errors.seconds_until_due())

    def _arm(self, delay: float) -> None:
        with self._lock:
            if self._timer is not None or self._closed:
                return
            self._timer = threading.Timer(delay, self._write)
            self._timer.daemon = True
            self._timer.name = "runner-database-errors"
            self._timer.start()

    def _write(self) -> None:
        try:
            with self._connect() as conn:
                self.errors.flush(conn)
        except Exception as exc:  # noqa: BLE001 - still unreachable: try again later
            log.debug("database still unreachable for error_logs: %s", _first_line(exc))
        with self._lock:
            self._timer = None
        if self.errors.pending:  # not written: the database is still away (retry), or it is not due yet
            self._arm(self.errors.seconds_until_due() or self.retry)

    def close(self) -> None:
        """Stop the timer and write what is counted now, if the database answers (once, no waiting)."""
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        if self.errors.pending:
            try:
                with self._connect() as conn:
                    self.errors.flush(conn, force=True)
            except Exception as exc:  # noqa: BLE001 - shutting down: say what is lost
                log.warning(
                    "%d database failure(s) not written to error_logs: %s",
                    self.errors.pending,
                    _first_line(exc),
                )
