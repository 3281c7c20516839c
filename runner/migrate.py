"""Applying the SQL project: history, checksums, drift, the advisory lock, one transaction per file."""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

from runner.errors import DriftError, MigrationError
from runner.locks import APPLY_LOCK, advisory_lock
from runner.project import Project, SqlFile

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

State = Literal["applied", "pending", "drifted", "changed", "missing"]


@dataclass
class FileStatus:
    name: str
    kind: str
    version: int | None
    state: State
    checksum: str | None
    applied_checksum: str | None = None
    applied_at: str | None = None


@dataclass
class StepResult:
    name: str
    kind: str
    action: Literal["apply", "reapply"]
    duration_ms: int = 0


@dataclass
class ApplyResult:
    steps: list[StepResult] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0
    lock_wait_seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "applied": [asdict(s) for s in self.steps],
            "dry_run": self.dry_run,
            "seconds": round(self.seconds, 3),
            "lock_wait_seconds": round(self.lock_wait_seconds, 3),
        }


# -- history -----------------------------------------------------------------------------------------
def ensure_history(conn: psycopg.Connection, project: Project) -> None:
    """Create the schema and the history table when missing (under the apply lock), in one round trip."""
    conn.execute(
        f"""CREATE SCHEMA IF NOT EXISTS {project.schema};
            CREATE TABLE IF NOT EXISTS {project.history_table} (
              id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              kind           TEXT NOT NULL CHECK (kind IN ('versioned', 'repeatable')),
              version        INTEGER,
              name           TEXT NOT NULL,
              checksum       TEXT NOT NULL,
              applied_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
              duration_ms    INTEGER NOT NULL,
              applied_by     TEXT NOT NULL DEFAULT current_user,
              client         TEXT NOT NULL,
              runner_version TEXT NOT NULL,
              UNIQUE (version)
            )"""
    )


def history_exists(conn: psycopg.Connection, project: Project) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (project.history_table,)).fetchone()[0]


def applied(conn: psycopg.Connection, project: Project) -> dict[str, dict]:
    """The latest history row of every file name (none on a database never applied to)."""
    query = f"""SELECT DISTINCT ON (name) name, kind, version, checksum, applied_at, id
                  FROM {project.history_table} ORDER BY name, id DESC"""
    if conn.autocommit:
        # One round trip: on a new database the missing table is the answer, not a second query first.
        import psycopg

        try:
            rows = conn.execute(query).fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
    else:  # inside the caller's transaction an error would abort it: ask the catalogue first
        if not history_exists(conn, project):
            return {}
        rows = conn.execute(query).fetchall()
    return {
        r[0]: {"kind": r[1], "version": r[2], "checksum": r[3], "applied_at": r[4].isoformat(), "id": r[5]}
        for r in rows
    }


def status(conn: psycopg.Connection, project: Project) -> list[FileStatus]:
    """Each file of the project as applied / pending / drifted (versioned) / changed (repeatable),
    plus history entries whose file is gone (missing)."""
    done = applied(conn, project)
    result: list[FileStatus] = []
    names = set()
    for f in project.files():
        names.add(f.name)
        row = done.get(f.name)
        if row is None:
            state: State = "pending"
        elif row["checksum"] == f.checksum:
            state = "applied"
        else:
            state = "drifted" if f.kind == "versioned" else "changed"
        result.append(
            FileStatus(
                name=f.name,
                kind=f.kind,
                version=f.version,
                state=state,
                checksum=f.checksum,
                applied_checksum=row["checksum"] if row else None,
                applied_at=row["applied_at"] if row else None,
            )
        )
    for name, row in sorted(done.items()):
        if name not in names:
            result.append(
                FileStatus(
                    name=name,
                    kind=row["kind"],
                    version=row["version"],
                    state="missing",
                    checksum=None,
                    applied_checksum=row["checksum"],
                    applied_at=row["applied_at"],
                )
            )
    return result


def plan(conn: psycopg.Connection, project: Project) -> list[tuple[SqlFile, Literal["apply", "reapply"]]]:
    """What apply would run, in order. Raises DriftError when an applied versioned file was edited."""
    done = applied(conn, project)
    files = project.files()
    versioned = [f for f in files if f.kind == "versioned"]
    drifted = [
        (f, done[f.name]["checksum"])
        for f in versioned
        if f.name in done and done[f.name]["checksum"] != f.checksum
    ]
    if drifted:
        f, old = drifted[0]
        more = f" (and {len(drifted) - 1} more)" if len(drifted) > 1 else ""
        raise DriftError(
            f"{f.label} was edited after it was applied (applied checksum {old[:12]}, now {f.checksum[:12]})"
            f"{more}; nothing was applied. Revert the edit and put the change in a new "
            f"sql/tables/V<next>__*.sql file, or if the database already matches the edit, record it with "
            f"`runner baseline {f.name}`"
        )
    max_applied = max((r["version"] for r in done.values() if r["version"] is not None), default=0)
    steps: list[tuple[SqlFile, Literal["apply", "reapply"]]] = []
    for f in versioned:
        if f.name not in done:
            if f.version is not None and f.version < max_applied:
                log.warning("%s has a lower version than one already applied; applying it now", f.label)
            steps.append((f, "apply"))
    finals = []
    for f in files:
        if f.kind != "repeatable":
            continue
        if f.finally_:
            finals.append(f)
            continue
        row = done.get(f.name)
        if row is None:
            steps.append((f, "apply"))
        elif row["checksum"] != f.checksum:
            steps.append((f, "reapply"))
    # A `finally` file runs again after anything else ran: in this apply, or after its own last run (an
    # apply killed between a function file and the privileges must not leave a function created again
    # without its grants). Versioned files do not count there: a table starts with no grants at all, which
    # is safe, and `runner baseline` of a table file must leave nothing to apply.
    final_names = {f.name for f in finals}
    latest_other = max(
        (r["id"] for name, r in done.items() if name not in final_names and r["kind"] == "repeatable"),
        default=0,
    )
    for f in finals:
        row = done.get(f.name)
        if row is None:
            steps.append((f, "apply"))
        elif row["checksum"] != f.checksum or steps or latest_other > row["id"]:
            steps.append((f, "reapply"))
    return steps


# -- applying ----------------------------------------------------------------------------------------
@functools.cache
def _client() -> str:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = "?"
    return f"{user}@{socket.gethostname()}"


@functools.cache
def _runner_version() -> str:
    """The installed runner's version, read once (the package metadata is slow to read on every file)."""
    from runner import __version__

    return __version__


def _record(conn: psycopg.Connection, project: Project, f: SqlFile, duration_ms: int) -> None:
    conn.execute(
        f"""INSERT INTO {project.history_table}
              (kind, version, name, checksum, duration_ms, client, runner_version)
            VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (f.kind, f.version, f.name, f.checksum, duration_ms, _client(), _runner_version()),
    )


def _record_sql(conn: psycopg.Connection, project: Project, f: SqlFile) -> str:
    """_record's INSERT as SQL text with its values quoted, to send in one query with the file."""
    from psycopg import sql

    return (
        sql.SQL(
            "INSERT INTO {} (kind, version, name, checksum, duration_ms, client, runner_version) VALUES "
            "({}, {}, {}, {}, (extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000)::int, {}, {})"
        )
        .format(
            sql.SQL(project.history_table),
            *map(sql.Literal, (f.kind, f.version, f.name, f.checksum, _client(), _runner_version())),
        )
        .as_string(conn)
    )


def split_statements(sql: str) -> list[str]:
    """Split a file into statements: on `;` at the end of a line (before any trailing comment), outside
    dollar quotes."""
    statements, current = [], []
    in_dollar: str | None = None
    for line in sql.splitlines():
        current.append(line)
        for tag in re.findall(r"\$[A-Za-z_]*\$", line):
            if in_dollar is None:
                in_dollar = tag
            elif tag == in_dollar:
                in_dollar = None
        # A line's own trailing comment (`...; -- why`) does not hide the semicolon before it.
        if in_dollar is None and re.sub(r"--[^']*$", "", line).rstrip().endswith(";"):
            statement = "\n".join(current).strip()
            if _has_code(statement):
                statements.append(statement)
            current = []
    rest = "\n".join(current).strip()
    if _has_code(rest):
        statements.append(rest)
    return statements


def _has_code(sql: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in sql.splitlines())


def _describe(exc: Exception, f: SqlFile, sql: str, offset_line: int = 0) -> str:
    diag = getattr(exc, "diag", None)
    message = (getattr(diag, "message_primary", None) or str(exc)).strip().splitlines()[0]
    where = ""
    position = getattr(diag, "statement_position", None)
    if position:
        line = sql[: int(position) - 1].count("\n") + 1 + offset_line
        where = f":{line}"
    elif getattr(diag, "context", None):
        m = re.search(r"line (\d+)", diag.context)
        if m:
            where = f" (function body line {m.group(1)})"
    sqlstate = getattr(exc, "sqlstate", None)
    code = f" [SQLSTATE {sqlstate}]" if sqlstate else ""
    return f"{f.label}{where}: {message}{code}; nothing of this file was applied"


def _run_file(conn: psycopg.Connection, project: Project, f: SqlFile, *, flush: bool = True) -> int:
    import psycopg

    start = time.monotonic()
    if f.transactional and conn.autocommit:
        # One round trip instead of four (BEGIN, file, history row, COMMIT): the file and its history row
        # as one simple query, which PostgreSQL runs as one implicit transaction, all of it or nothing.
        # The row's duration is then the server's own, from the query's arrival to the row.
        # flush=False: this commit does not wait for its WAL to reach disk (SET LOCAL: this transaction
        # only). Still all or nothing; a server crash before the apply's last, flushed commit (which
        # flushes every earlier one) can only lose whole files with their history rows, which the next
        # apply runs again. One disk flush per apply instead of one per file.
        relaxed = "" if flush else "\n;\nSET LOCAL synchronous_commit = off"
        try:
            conn.execute(f"{f.rendered}\n;\n{_record_sql(conn, project, f)}{relaxed}")
        except psycopg.Error as exc:
            raise MigrationError(_describe(exc, f, f.rendered), exc.sqlstate) from None
        return int((time.monotonic() - start) * 1000)
    if f.transactional:
        try:
            with conn.transaction():
                conn.execute(f.rendered)
                duration_ms = int((time.monotonic() - start) * 1000)
                _record(conn, project, f, duration_ms)
        except psycopg.Error as exc:
            raise MigrationError(_describe(exc, f, f.rendered), exc.sqlstate) from None
        return duration_ms
    # Statements that cannot run inside a transaction (CREATE INDEX CONCURRENTLY...) run one by one;
    # the history row is written only when all have succeeded, so a failed file is retried whole.
    for statement in split_statements(f.rendered):
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            message = _describe(exc, f, statement, f.rendered[: f.rendered.find(statement)].count("\n"))
            raise MigrationError(
                message.replace(
                    "nothing of this file was applied",
                    "statements before it stay applied; "
                    "the file will run again on the next apply, so keep it idempotent",
                ),
                exc.sqlstate,
            ) from None
    duration_ms = int((time.monotonic() - start) * 1000)
    _record(conn, project, f, duration_ms)
    return duration_ms


def apply(
    connect: Callable[[], psycopg.Connection],
    project: Project,
    *,
    dry_run: bool = False,
    lock_timeout: float = 60.0,
    on_step: Callable[[SqlFile, str], None] | None = None,
) -> ApplyResult:
    """Apply every pending file under the apply lock. Each file and its history row commit together."""
    result = ApplyResult(dry_run=dry_run)
    start = time.monotonic()
    # Render everything first: a template error stops us before the database is touched.
    project.files()
    conn = connect()
    try:
        # Look before locking: a database whose history already holds every file at its checksum needs
        # nothing, not even the lock (one query for the commonest apply, CI's no-op). Whatever is pending
        # is planned again under the lock, where another apply may just have done it.
        pending = plan(conn, project)
        if dry_run:
            for f, action in pending:
                result.steps.append(StepResult(f.name, f.kind, action))
                if on_step:
                    on_step(f, action)
        if dry_run or not pending:
            result.seconds = time.monotonic() - start
            return result
        with advisory_lock(conn, APPLY_LOCK, lock_timeout, what="apply") as waited:
            result.lock_wait_seconds = waited
            ensure_history(conn, project)
            steps = plan(conn, project)
            for n, (f, action) in enumerate(steps, 1):
                if on_step:
                    on_step(f, action)
                log.info("%s %s", action, f.label)
                duration = _run_file(conn, project, f, flush=n == len(steps))
                result.steps.append(StepResult(f.name, f.kind, action, duration))
    finally:
        conn.close()
    result.seconds = time.monotonic() - start
    return result


def baseline(
    connect: Callable[[], psycopg.Connection], project: Project, name: str, lock_timeout: float = 60.0
) -> SqlFile:
    """Record a file as applied with its current checksum without running it (resolving drift on purpose)."""
    rel = project.find(name)
    target = next((f for f in project.files() if f.name == rel), None)
    if target is None:
        raise MigrationError(f"sql/{rel} is not a table or function file")
    conn = connect()
    try:
        with advisory_lock(conn, APPLY_LOCK, lock_timeout, what="apply"):
            ensure_history(conn, project)
            with conn.transaction():
                if target.kind == "versioned":
                    conn.execute(f"DELETE FROM {project.history_table} WHERE name = %s", (target.name,))
                _record(conn, project, target, 0)
    finally:
        conn.close()
    return target
