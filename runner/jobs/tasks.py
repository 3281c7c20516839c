"""The scheduled jobs (expire, remind, cleanup, send-email, rollup): each overlap-safe, batched and recorded.

Every run takes its job's advisory lock without waiting: a second copy (cron firing again while the first
still runs, two schedulers, a person running it by hand) is *skipped*, recorded as such, and its caller
exits 6. A run that holds the lock is recorded in `job_runs` from start to finish, with its rows, batches,
outcome and error; that table is what `runner job history`, `runner doctor` and /metrics read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from psycopg.types.json import Jsonb

from runner import database, error_log
from runner.errors import JobFailed, LockTimeout
from runner.jobs.catalogue import (  # noqa: F401 (EXIT_SKIPPED, Job: re-exported for callers)
    DEFAULT_CLEANUP_BATCH,
    DEFAULT_EXPIRE_BATCH,
    DEFAULT_FOLD_BATCH,
    EXIT_SKIPPED,
    FIRST_BATCH,
    JOBS,
    TARGET_BATCH_SECONDS,
    Job,
)
from runner.locks import advisory_lock

if TYPE_CHECKING:
    from pathlib import Path

    import psycopg

    from runner.jobs.mail import MailConfig
    from runner.project import Project

log = logging.getLogger(__name__)

Outcome = Literal["succeeded", "failed", "skipped", "dry-run"]


@dataclass
class Tally:
    """What a run has done so far; kept up to date batch by batch so a failed run still records it."""

    rows: int = 0
    batches: int = 0
    longest_batch_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    on_batch: Callable[[Tally], None] | None = None

    def batch(self, rows: int, seconds: float) -> None:
        self.rows += rows
        self.batches += 1
        self.longest_batch_seconds = max(self.longest_batch_seconds, seconds)
        if self.on_batch is not None:
            self.on_batch(self)


@dataclass
class RunResult:
    """The outcome of one run of a job, as recorded in job_runs."""

    job: str
    outcome: Outcome
    rows: int = 0
    batches: int = 0
    seconds: float = 0.0
    run_id: int | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data

    def summary(self) -> str:
        """One line for cron's mail and the logs."""
        if self.outcome == "skipped":
            return f"{self.job}: skipped: {self.error}"
        if self.outcome == "dry-run":
            return f"{self.job}: dry run: {self.rows} row(s) would change, {self.seconds:.2f}s"
        if self.job in ("remind", "send-email"):
            emails = ", ".join(f"{k} {self.details.get(k, 0)}" for k in EMAIL_COUNTS if k in self.details)
            return f"{self.job}: {emails}, {self.seconds:.2f}s"
        return f"{self.job}: {self.rows} rows in {self.batches} batch(es), {self.seconds:.2f}s"


EMAIL_COUNTS = ("queued", "sent", "retrying", "failed", "canceled")


# -- the jobs ----------------------------------------------------------------------------------------------
def expire(conn: psycopg.Connection, tally: Tally, *, batch_size: int = DEFAULT_EXPIRE_BATCH) -> None:
    """Expire overdue pending sessions, one short transaction per batch of at most `batch_size` rows."""
    _check_positive("batch size", batch_size)
    tally.details["batch_size"] = batch_size
    _batches(
        tally,
        lambda size: conn.execute("SELECT expire_old_checkout_sessions(%s)", (size,)).fetchone()[0],
        batch_size,
    )
    # Each batch appended its few rollup deltas; fold them now so the rollup is compact after every run.
    tally.details["rollup_deltas_folded"] = fold_rollup_deltas(conn)


def rollup(conn: psycopg.Connection, tally: Tally, *, batch_size: int = DEFAULT_FOLD_BATCH) -> None:
    """Fold the rollup's deltas into checkout_session_rollup, one short transaction per batch."""
    _check_positive("batch size", batch_size)
    tally.details["batch_size"] = batch_size
    _batches(
        tally,
        lambda size: conn.execute("SELECT fold_checkout_session_rollup(%s)", (size,)).fetchone()[0],
        batch_size,
    )


def fold_rollup_deltas(conn: psycopg.Connection, batch_size: int = DEFAULT_FOLD_BATCH) -> int:
    """Fold every rollup delta there is now (a transaction per batch); returns how many were folded."""
    folded = 0
    while True:
        rows = conn.execute("SELECT fold_checkout_session_rollup(%s)", (batch_size,)).fetchone()[0]
        folded += rows
        if rows < batch_size:
            return folded


def count_rollup_deltas(conn: psycopg.Connection) -> int:
    """How many rollup deltas `rollup` would fold now."""
    return conn.execute("SELECT count_checkout_session_rollup_deltas()").fetchone()[0]


def count_overdue(conn: psycopg.Connection) -> int:
    """How many pending sessions `expire` would expire now."""
    return conn.execute("SELECT count_overdue_checkout_sessions()").fetchone()[0]


def cleanup(
    conn: psycopg.Connection, tally: Tally, *, retention_days: int, batch_size: int = DEFAULT_CLEANUP_BATCH
) -> None:
    """Move completed sessions older than `retention_days` to the archive, one transaction per batch."""
    _check_positive("batch size", batch_size)
    _check_positive("retention days", retention_days)
    tally.details.update(batch_size=batch_size, retention_days=retention_days)
    _batches(
        tally,
        lambda size: conn.execute(
            "SELECT archive_completed_checkout_sessions(%s, %s)", (size, retention_days)
        ).fetchone()[0],
        batch_size,
    )


def count_archivable(conn: psycopg.Connection, retention_days: int) -> int:
    """How many completed sessions `cleanup` would archive now."""
    _check_positive("retention days", retention_days)
    return conn.execute("SELECT count_archivable_checkout_sessions(%s)", (retention_days,)).fetchone()[0]


def remind(
    conn: psycopg.Connection,
    tally: Tally,
    *,
    project: Project,
    mail: MailConfig | Callable[[], MailConfig] | None,
) -> None:
    """Queue one reminder per candidate (a database rule: never two), then deliver the outbox.

    With `mail` None the reminders are only queued (`send-email` delivers them later)."""
    started = time.monotonic()
    queued = conn.execute("SELECT queue_checkout_reminders()").fetchone()[0]
    tally.details["queued"] = queued
    tally.batch(0, time.monotonic() - started)
    if mail is not None:
        send_email(conn, tally, project=project, mail=mail)


def reminder_candidates(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Who `remind` would remind now (sessions without a reminder queued)."""
    from psycopg.rows import dict_row

    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM checkout_reminder_candidates()").fetchall()


def send_email(
    conn: psycopg.Connection, tally: Tally, *, project: Project, mail: MailConfig | Callable[[], MailConfig]
) -> None:
    """Deliver every due email of the outbox (see runner/mail.py).

    `mail` may be MailConfig.from_env itself: read here, inside the recorded run, a missing or bad SMTP_URL
    is a failed run in job_runs (which `runner doctor` and /metrics see), not an error before any record."""
    from runner.jobs import mail as mail_mod

    if callable(mail):
        mail = mail()
    counts = mail_mod.deliver(
        conn, project, mail, on_email=lambda status, s: tally.batch(1 if status == "sent" else 0, s)
    )
    for status, n in counts.items():
        tally.details[status] = tally.details.get(status, 0) + n


def count_due_email(conn: psycopg.Connection) -> int:
    """How many queued emails `send-email` would try now."""
    return conn.execute("SELECT count_due_emails()").fetchone()[0]


def _batches(tally: Tally, call: Callable[[int], int], batch_size: int) -> None:
    """Run `call(size)` (one batch of at most `size` rows; returns how many) until a batch comes back short.

    Autocommit: each call is its own short transaction, so locks are held one batch at a time and what
    is done stays done if a later batch fails. A short batch means the backlog is gone (rows another
    transaction held were skipped; the next run takes them). The size starts small and doubles up to
    `batch_size` while a batch takes less than TARGET_BATCH_SECONDS, and shrinks when one takes longer,
    so no batch holds its locks for long whatever the per-row cost (triggers, indexes, I/O)."""
    size = min(batch_size, FIRST_BATCH)
    while True:
        started = time.monotonic()
        rows = call(size)
        seconds = time.monotonic() - started
        tally.batch(rows, seconds)
        log.debug("batch %d: %d of at most %d rows in %.3fs", tally.batches, rows, size, seconds)
        if rows < size:
            return
        if seconds > TARGET_BATCH_SECONDS:
            size = max(1, int(size * TARGET_BATCH_SECONDS / seconds * 0.8))
        elif seconds < TARGET_BATCH_SECONDS / 2:
            size = min(batch_size, size * 2)


def _check_positive(what: str, value: int) -> None:
    from runner.errors import JobOptionError

    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise JobOptionError(f"{what} must be a positive whole number, got {value!r}")


# -- running and recording -----------------------------------------------------------------------------
WORK: dict[str, Callable[..., None]] = {
    "expire": expire,
    "remind": remind,
    "cleanup": cleanup,
    "send-email": send_email,
    "rollup": rollup,
}


def run(
    connect: Callable[[], psycopg.Connection],
    name: str,
    *,
    on_batch: Callable[[Tally], None] | None = None,
    spool: Path | None = None,
    **options: Any,
) -> RunResult:
    """Run job `name` once under its advisory lock, recorded in job_runs.

    Returns outcome 'skipped' when another run holds the lock (recorded too); raises JobFailed (after
    recording the failure) when the work fails. `options` go to the job function. A database failure is
    written to error_logs (category database); with `spool` (a file, see error_log.spool_path), one that
    cannot be written now is kept there and written by the next run that reaches the database."""
    job = JOBS[name]
    started = time.monotonic()
    failures = error_log.DatabaseErrors(f"runner job {name}", interval=0)
    if spool is not None:
        failures.take(spool)
    conn = None
    try:
        conn = connect()
        try:
            with advisory_lock(conn, job.lock_key, 0, f"run of job {name}"):
                return _run_locked(conn, job, started, on_batch, options)
        except LockTimeout as exc:
            result = RunResult(
                name,
                "skipped",
                seconds=time.monotonic() - started,
                error=f"another run of this job holds its lock: {exc.holder}",
            )
            result.run_id = _record_skipped(conn, name, result.error)
            log.info("%s", result.summary())
            return result
    except Exception as exc:
        failures.note(exc.__cause__ if isinstance(exc, JobFailed) and exc.__cause__ is not None else exc)
        raise
    finally:
        _write_failures(failures, conn, spool)
        if conn is not None:
            conn.close()


def _write_failures(
    failures: error_log.DatabaseErrors, conn: psycopg.Connection | None, spool: Path | None
) -> None:
    """error_logs rows for the database failures of this run (and of earlier runs, from the spool)."""
    if not failures.pending:
        return
    if conn is not None and not conn.closed:
        if conn.info.transaction_status != 0:  # a failed statement left a transaction open
            try:
                conn.rollback()
            except Exception as exc:  # noqa: BLE001 - the connection is gone: the spool keeps them
                log.debug("could not roll back before writing error_logs: %s", _one_line(exc))
        failures.flush(conn, force=True)
    if failures.pending and spool is not None:
        failures.save(spool)


def _run_locked(
    conn: psycopg.Connection,
    job: Job,
    started: float,
    on_batch: Callable[[Tally], None] | None,
    options: dict[str, Any],
) -> RunResult:
    # Holding the lock, any 'running' row of this job belongs to a run that died without finishing:
    # start_job_run marks those failed (abandoned) and records this run. The jobs' database role writes
    # job_runs only through these functions (sql/functions/job_runs.sql).
    run_id, abandoned = conn.execute(
        "SELECT run_id, abandoned FROM start_job_run(%s, %s)",
        (job.name, database.application_name(f"job {job.name}")),
    ).fetchone()
    if abandoned:
        log.warning("%s: marked %d abandoned run(s) as failed", job.name, abandoned)
    tally = Tally(on_batch=on_batch)
    try:
        WORK[job.name](conn, tally, **options)
    except Exception as exc:
        error = _one_line(exc)
        _finish(conn, run_id, "failed", tally, error)
        raise JobFailed(
            f"job {job.name} failed after {tally.batches} batch(es), {tally.rows} row(s) done: {error}"
        ) from exc
    _finish(conn, run_id, "succeeded", tally, None)
    result = RunResult(
        job.name,
        "succeeded",
        tally.rows,
        tally.batches,
        time.monotonic() - started,
        run_id,
        details=_details(tally),
    )
    log.info("%s", result.summary())
    return result


def _details(tally: Tally) -> dict[str, Any]:
    return {**tally.details, "longest_batch_seconds": round(tally.longest_batch_seconds, 3)}


def _finish(conn: psycopg.Connection, run_id: int, outcome: str, tally: Tally, error: str | None) -> None:
    try:
        if conn.info.transaction_status != 0:  # a failed batch left a transaction open
            conn.rollback()
        conn.execute(
            "SELECT finish_job_run(%s, %s, %s, %s, %s, %s)",
            (run_id, outcome, tally.rows, tally.batches, error, Jsonb(_details(tally))),
        )
    except Exception as exc:  # noqa: BLE001 - the database went away; the next run marks this one abandoned
        log.error("could not record the outcome of job run %s: %s", run_id, _one_line(exc))


def _record_skipped(conn: psycopg.Connection, name: str, error: str) -> int | None:
    try:
        return conn.execute(
            "SELECT record_skipped_job_run(%s, %s, %s)",
            (name, error, database.application_name(f"job {name}")),
        ).fetchone()[0]
    except Exception as exc:  # noqa: BLE001 - recording is best effort; the skip itself stands
        log.error("could not record the skipped run of %s: %s", name, _one_line(exc))
        return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    return f"[SQLSTATE {sqlstate}] {text}" if sqlstate else text


# -- history -------------------------------------------------------------------------------------------
def history(conn: psycopg.Connection, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first (of one job, or of all)."""
    from psycopg.rows import dict_row

    if job is not None and job not in JOBS:
        from runner.errors import JobOptionError

        raise JobOptionError(f"unknown job {job!r} (jobs: {', '.join(JOBS)})")
    _check_positive("limit", limit)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM job_run_history(%s, %s)", (job, limit)).fetchall()
