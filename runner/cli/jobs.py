"""`runner job ...` and `runner schedule`: thin commands over runner/jobs/ (tasks, mail, schedule, pg_cron).

Exit codes: 0 done; 1 the job failed (one `Error: ...` line; recorded in job_runs); 2 usage;
6 skipped: another run of this job holds its lock (one line on stderr; recorded as 'skipped').
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import click

from runner.cli import FORMAT, Context, emit
from runner.jobs.catalogue import (
    DEFAULT_CLEANUP_BATCH,
    DEFAULT_EXPIRE_BATCH,
    DEFAULT_FOLD_BATCH,
    EXIT_SKIPPED,
    FIRST_BATCH,
    JOBS,
    TARGET_BATCH_SECONDS,
    listing,
)

if (
    TYPE_CHECKING
):  # the jobs themselves (and psycopg) load only when a job runs: `runner job list` stays quick
    from runner.jobs.tasks import RunResult, Tally

BATCH_SIZE = click.IntRange(min=1)


def _progress(job: str, fmt: str):
    """A progress line on stderr when it is a terminal (never in cron's mail or in JSON output)."""
    if fmt != "text" or not sys.stderr.isatty():
        return None
    started = time.monotonic()

    def show(tally: Tally) -> None:
        click.echo(
            f"\r{job}: {tally.rows} rows, {tally.batches} batch(es), {time.monotonic() - started:.1f}s",
            err=True,
            nl=False,
        )

    return show


def _report(ctx: click.Context, result: RunResult, fmt: str, shown_progress: bool) -> None:
    if shown_progress:
        click.echo("", err=True)
    if fmt == "json":
        emit(result.as_dict(), fmt, "")
    elif result.outcome == "skipped":
        click.echo(result.summary(), err=True)
    else:
        click.echo(result.summary())
    if result.outcome == "skipped":
        ctx.exit(EXIT_SKIPPED)


def _run(ctx: click.Context, obj: Context, name: str, fmt: str, **options: Any) -> None:
    from runner import error_log
    from runner.jobs import tasks as jobs

    progress = _progress(name, fmt)
    result = jobs.run(
        lambda: obj.connect(f"job {name}", role="jobs_role"),
        name,
        on_batch=progress,
        spool=error_log.spool_path(obj.url),
        **options,
    )
    _report(ctx, result, fmt, progress is not None and result.outcome != "skipped")


def _dry_run(ctx: click.Context, obj: Context, name: str, fmt: str, count, extra: dict | None = None) -> None:
    from runner.jobs.tasks import RunResult

    started = time.monotonic()
    conn = obj.connect(f"job {name} --dry-run", role="jobs_role")
    try:
        n = count(conn)
    finally:
        conn.close()
    _report(
        ctx,
        RunResult(name, "dry-run", rows=n, seconds=time.monotonic() - started, details=extra or {}),
        fmt,
        False,
    )


@click.group()
def job() -> None:
    """Run the scheduled jobs once (from cron, a systemd timer or a Kubernetes CronJob), and see their runs.

    Each job takes its own PostgreSQL advisory lock: a second copy started while one runs exits 6 at once
    with one line, recorded as 'skipped'. Every run is recorded in job_runs (`runner job history`).

    \b
    Examples:
      runner job list                    # the jobs and their default schedules
      runner job expire                  # hourly
      runner job remind                  # every 6 hours
      runner job cleanup                 # weekly
      runner job rollup                  # every 5 minutes
      runner job history --limit 5
    """


@job.command()
@click.option(
    "--batch-size",
    type=BATCH_SIZE,
    default=DEFAULT_EXPIRE_BATCH,
    show_default=True,
    help=f"Most rows per transaction. Batches start at {FIRST_BATCH} rows and adapt to about "
    f"{TARGET_BATCH_SECONDS:g} s each, so locks are held briefly, one batch at a time.",
)
@click.option("--dry-run", is_flag=True, help="Count the overdue sessions; change nothing.")
@FORMAT
@click.pass_context
def expire(ctx: click.Context, batch_size: int, dry_run: bool, fmt: str) -> None:
    """Expire pending checkout sessions past their expires_at, in batches (hourly).

    Prints one summary line: rows, batches, seconds. Progress goes to stderr on a terminal.

    \b
    Examples:
      runner job expire
      runner job expire --batch-size 5000
      runner job expire --dry-run        # how many are overdue
      runner job expire --format json
    """
    from runner.jobs import tasks as jobs

    if dry_run:
        return _dry_run(ctx, ctx.obj, "expire", fmt, jobs.count_overdue)
    _run(ctx, ctx.obj, "expire", fmt, batch_size=batch_size)


@job.command()
@click.option("--dry-run", is_flag=True, help="List who would be reminded; queue and send nothing.")
@click.option("--no-send", is_flag=True, help="Only queue the reminders; `runner job send-email` sends them.")
@FORMAT
@click.pass_context
def remind(ctx: click.Context, dry_run: bool, no_send: bool, fmt: str) -> None:
    """Email one reminder per abandoned checkout (every 6 hours), then deliver the outbox.

    Candidates are the reference's: pending, created 6 to 24 hours ago, fewer than 3 attempts. Each
    session gets one reminder ever (a unique key in email_outbox), even when runs overlap or are retried.
    Delivery uses SMTP_URL and MAIL_FROM; a failed delivery stays queued for the next run.

    \b
    Examples:
      SMTP_URL=smtp://user:pass@mail.example.com:587 runner job remind
      runner job remind --dry-run        # who would be reminded
      runner job remind --no-send        # queue only
    """
    from runner.jobs import tasks as jobs
    from runner.jobs.mail import MailConfig

    obj: Context = ctx.obj
    if dry_run:
        conn = obj.connect("job remind --dry-run", role="jobs_role")
        try:
            rows = jobs.reminder_candidates(conn)
        finally:
            conn.close()
        if fmt == "json":
            emit(rows, fmt, "")
        else:
            for r in rows:
                click.echo(
                    f"{r['email']}  {r['subscription_plan']}  created {r['created_at']:%Y-%m-%d %H:%M %Z}  "
                    f"attempts {r['attempts']}  session {r['session_id']}"
                )
            click.echo(f"remind: {len(rows)} would be reminded")
        return
    mail = None if no_send else MailConfig.from_env  # read inside the recorded run (job_runs)
    _run(ctx, obj, "remind", fmt, project=obj.project, mail=mail)


@job.command()
@click.option(
    "--batch-size",
    type=BATCH_SIZE,
    default=DEFAULT_CLEANUP_BATCH,
    show_default=True,
    help=f"Most rows moved per transaction (adapting to about {TARGET_BATCH_SECONDS:g} s each, like expire).",
)
@click.option(
    "--retention-days",
    type=click.IntRange(min=1),
    default=None,
    metavar="DAYS",
    help="Keep completed sessions this long in the live table. Default: settings.retention_days.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be archived; change nothing.")
@FORMAT
@click.pass_context
def cleanup(ctx: click.Context, batch_size: int, retention_days: int | None, dry_run: bool, fmt: str) -> None:
    """Move completed sessions older than the retention to payment_checkout_sessions_archive (weekly).

    Rows are moved, never deleted: one transaction per batch inserts them into the archive and removes
    them from the live table. The retention defaults to retention_days in sql/project.toml (90).

    \b
    Examples:
      runner job cleanup
      runner job cleanup --retention-days 365 --dry-run
      psql -c "SELECT count(*) FROM payment_checkout_sessions_archive"
    """
    from runner.jobs import tasks as jobs

    obj: Context = ctx.obj
    days = retention_days or obj.project.settings["retention_days"]
    if dry_run:
        return _dry_run(
            ctx, obj, "cleanup", fmt, lambda c: jobs.count_archivable(c, days), {"retention_days": days}
        )
    _run(ctx, obj, "cleanup", fmt, batch_size=batch_size, retention_days=days)


@job.command(name="send-email")
@click.option("--dry-run", is_flag=True, help="Count the emails due now; send nothing.")
@FORMAT
@click.pass_context
def send_email(ctx: click.Context, dry_run: bool, fmt: str) -> None:
    """Deliver the email outbox over SMTP: verification emails and reminders (every 5 minutes).

    Each email is locked, sent and marked sent in one transaction, so two senders never send one email
    twice. A temporary SMTP error queues it again with backoff, up to MAIL_MAX_ATTEMPTS; then it is
    marked failed. An unreachable server fails the run and leaves every email queued.

    \b
    Examples:
      SMTP_URL=smtps://user:pass@mail.example.com MAIL_FROM=billing@example.com runner job send-email
      runner job send-email --dry-run
    """
    from runner.jobs import tasks as jobs
    from runner.jobs.mail import MailConfig

    obj: Context = ctx.obj
    if dry_run:
        return _dry_run(ctx, obj, "send-email", fmt, jobs.count_due_email)
    _run(ctx, obj, "send-email", fmt, project=obj.project, mail=MailConfig.from_env)


@job.command()
@click.option(
    "--batch-size",
    type=BATCH_SIZE,
    default=DEFAULT_FOLD_BATCH,
    show_default=True,
    help="Most delta rows folded per transaction.",
)
@click.option("--dry-run", is_flag=True, help="Count the deltas waiting to be folded; change nothing.")
@FORMAT
@click.pass_context
def rollup(ctx: click.Context, batch_size: int, dry_run: bool, fmt: str) -> None:
    """Fold the rollup's appended deltas into checkout_session_rollup (every 5 minutes).

    Writers append signed deltas instead of updating shared rollup rows, so they never wait for each
    other; reports read rollup and deltas together and are exact either way. Folding keeps the delta
    table small, so reports stay fast. `runner job expire` also folds after its batches.

    \b
    Examples:
      runner job rollup
      runner job rollup --dry-run        # how many deltas wait
      runner job rollup --format json
    """
    from runner.jobs import tasks as jobs

    if dry_run:
        return _dry_run(ctx, ctx.obj, "rollup", fmt, jobs.count_rollup_deltas)
    _run(ctx, ctx.obj, "rollup", fmt, batch_size=batch_size)


@job.command(name="list")
@FORMAT
def list_(fmt: str) -> None:
    """Show each job, its default schedule (cron syntax) and what it does.

    \b
    Examples:
      runner job list
      runner job list --format json | jq -r '.[] | "\\(.schedule) runner job \\(.name)"'   # a crontab
    """
    click.echo(listing(fmt))


@job.command()
@click.argument("name", required=False, type=click.Choice(list(JOBS)))
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs.")
@FORMAT
@click.pass_obj
def history(obj: Context, name: str | None, limit: int, fmt: str) -> None:
    """Show the latest job runs, newest first: when, how long, rows, outcome, error.

    \b
    Examples:
      runner job history
      runner job history expire --limit 5
      runner job history --format json | jq '.[] | select(.outcome == "failed")'
    """
    from runner.jobs import tasks as jobs

    conn = obj.connect("job history", role="jobs_role")
    try:
        rows = jobs.history(conn, name, limit)
    finally:
        conn.close()
    lines = []
    for r in rows:
        took = f"{r['seconds']:.2f}s" if r["seconds"] is not None else "-"
        line = (
            f"{r['id']:>6}  {r['job']:<10}  {r['started_at']:%Y-%m-%d %H:%M:%S%z}  {took:>9}  "
            f"{r['outcome']:<9}  {r['rows']:>9} rows  {r['batches']:>5} batches"
        )
        lines.append(line + (f"  {r['error']}" if r["error"] else ""))
    emit(rows, fmt, "\n".join(lines) or "No job runs recorded yet.")


def _schedule_pg_cron(obj: Context, remove: bool, fmt: str) -> None:
    from runner.jobs import pg_cron as pg_cron_mod

    conn = obj.connect("schedule --pg-cron")
    try:
        jobs = (pg_cron_mod.remove if remove else pg_cron_mod.install)(conn, obj.project)
    finally:
        conn.close()
    emit(
        [j.as_dict() for j in jobs],
        fmt,
        "\n".join(f"{j.action:<9}  {j.name:<28} {j.schedule:<12} {j.command}" for j in jobs),
    )


@click.command()
@click.option(
    "--job",
    "names",
    multiple=True,
    type=click.Choice(list(JOBS)),
    help="Only this job (repeatable). Default: every job.",
)
@click.option("--run-now", is_flag=True, help="Run each job once at start, then on its schedule.")
@click.option("--max-runs", type=click.IntRange(min=1), default=None, help="Stop after this many job runs.")
@click.option(
    "--duration", type=click.FloatRange(min=0), default=None, metavar="SECONDS", help="Stop after this long."
)
@click.option(
    "--pg-cron",
    is_flag=True,
    help="Instead: install (or update) expire, cleanup and rollup as pg_cron jobs in the database, then exit.",
)
@click.option("--remove", is_flag=True, help="With --pg-cron: unschedule those pg_cron jobs.")
@FORMAT
@click.pass_obj
def schedule(
    obj: Context,
    names: tuple[str, ...],
    run_now: bool,
    max_runs: int | None,
    duration: float | None,
    pg_cron: bool,
    remove: bool,
    fmt: str,
) -> None:
    """Run the jobs on their schedules in the foreground (UTC), for platforms without cron.

    Each run prints its summary line; a failing job prints one `Error:` line and the scheduler keeps
    going. SIGTERM or Ctrl-C stop it after the current job. Jobs keep their advisory locks, so running
    two schedulers (or a scheduler and cron) is safe: the second copy of a job is skipped.

    With --pg-cron, nothing runs here: the jobs that need no outside service (expire, cleanup, rollup)
    are scheduled inside the database by pg_cron (Supabase's cron), each one SQL call that takes the
    same lock as `runner job` and records its run in job_runs. Run it again to update them in place.
    remind and send-email need SMTP: keep them on `runner job` (see docs/supabase.md).

    \b
    Examples:
      runner schedule
      runner schedule --job expire --job cleanup
      runner schedule --run-now --max-runs 5      # each of the 5 jobs once, then exit
      runner schedule --pg-cron                   # expire, cleanup, rollup into pg_cron
      runner schedule --pg-cron --remove --format json
    """
    if remove and not pg_cron:
        raise click.UsageError("--remove goes with --pg-cron")
    if pg_cron:
        if names or run_now or max_runs is not None or duration is not None:
            raise click.UsageError("--pg-cron takes no --job, --run-now, --max-runs or --duration")
        _schedule_pg_cron(obj, remove, fmt)
        return
    from runner.errors import RunnerError
    from runner.jobs import schedule as schedule_mod
    from runner.jobs import tasks as jobs
    from runner.jobs.mail import MailConfig

    selected = names or tuple(JOBS)
    project = obj.project

    def options(name: str) -> dict[str, Any]:
        if name == "cleanup":
            return {"retention_days": project.settings["retention_days"]}
        if name in ("remind", "send-email"):
            return {"project": project, "mail": MailConfig.from_env}
        return {}

    def run_job(name: str) -> None:
        from runner import error_log

        result = jobs.run(
            lambda: obj.connect(f"job {name}", role="jobs_role"),
            name,
            spool=error_log.spool_path(obj.url),
            **options(name),
        )
        click.echo(result.summary(), err=result.outcome == "skipped")

    def on_error(name: str, exc: Exception) -> None:
        text = str(exc) if isinstance(exc, RunnerError) else f"{type(exc).__name__}: {exc}"
        click.echo(f"Error: {name}: {text}", err=True)

    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    click.echo("schedule (UTC): " + ", ".join(f"{n} '{JOBS[n].schedule}'" for n in selected), err=True)
    try:
        runs = schedule_mod.run(
            run_job,
            {n: JOBS[n].schedule for n in selected},
            run_now=run_now,
            max_runs=max_runs,
            duration=duration,
            stop=stop,
            on_error=on_error,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(f"schedule: stopped after {runs} job run(s)", err=True)
