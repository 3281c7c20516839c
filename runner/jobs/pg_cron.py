"""`runner schedule --pg-cron`: the jobs that need no outside service, scheduled inside the database by pg_cron.

Each pg_cron job is one SQL call, `SELECT <schema>.run_scheduled_job('<job>')` (sql/functions/
run_scheduled_job.sql): it takes the same advisory lock as `runner job <job>` and records its run in job_runs,
so cron and pg_cron never run a job twice at once. Installing again updates the jobs in place (cron.schedule
replaces a job of the same name); `--remove` unschedules them. Works on any PostgreSQL with the extension
(Supabase: Database > Extensions > pg_cron), in the database pg_cron runs in (its `cron.database_name`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from runner.errors import PgCronError
from runner.jobs.catalogue import JOBS
from runner.locks import LOCK_CLASS, SCHEDULE_LOCK

if TYPE_CHECKING:
    import psycopg

    from runner.project import Project

log = logging.getLogger(__name__)

# The jobs that need nothing outside the database (remind and send-email need SMTP: `runner job`).
DATABASE_JOBS = ("expire", "cleanup", "rollup")

Action = Literal["installed", "updated", "unchanged", "removed", "absent"]


@dataclass(frozen=True)
class CronJob:
    """One job as pg_cron knows it, and what this run did to it."""

    job: str
    name: str
    schedule: str
    command: str
    action: Action

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cron_job_name(project: Project, job: str) -> str:
    """pg_cron's name of a job: `checkout-sessions-expire` (with the schema when it is not public)."""
    schema = project.schema
    return f"checkout-sessions-{job}" if schema == "public" else f"checkout-sessions-{schema}-{job}"


def command(project: Project, job: str) -> str:
    """The one SQL call pg_cron runs for `job`."""
    return f"SELECT {project.schema}.run_scheduled_job('{job}')"


def pg_cron_version(conn: psycopg.Connection) -> str:
    """The installed pg_cron's version; PgCronError saying how to install it when it is not."""
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'").fetchone()
    if row is not None:
        return row[0]
    where = conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()[0]
    if where and where != conn.info.dbname:
        hint = (f"pg_cron runs in database {where!r} on this server (cron.database_name): connect to it, "
                "or set cron.database_name to this database and restart")
    elif where:
        hint = "CREATE EXTENSION pg_cron; (as a superuser; on Supabase: Database > Extensions > pg_cron)"
    else:
        hint = ("the server must preload it: shared_preload_libraries = 'pg_cron' and cron.database_name = "
                f"'{conn.info.dbname}' in postgresql.conf, restart, then CREATE EXTENSION pg_cron; "
                "(on Supabase: Database > Extensions > pg_cron)")
    raise PgCronError(f"pg_cron is not installed in database {conn.info.dbname!r}: {hint}")


def _existing(conn: psycopg.Connection, names: list[str]) -> dict[str, tuple[str, str]]:
    # cron.job shows each user only their own jobs (its row-level security); names are unique per user.
    rows = conn.execute("SELECT jobname, schedule, command FROM cron.job WHERE jobname = ANY(%s)", (names,))
    return {name: (schedule, cmd) for name, schedule, cmd in rows}


def install(conn: psycopg.Connection, project: Project) -> list[CronJob]:
    """Schedule (or update in place) the database jobs with their default schedules; what each became."""
    pg_cron_version(conn)
    if conn.execute("SELECT to_regprocedure(%s)", (f"{project.schema}.run_scheduled_job(text)",)).fetchone()[0] \
            is None:
        raise PgCronError(f"{project.schema}.run_scheduled_job does not exist in this database: run "
                          "`runner apply` first")
    names = {job: cron_job_name(project, job) for job in DATABASE_JOBS}
    result = []
    with conn.transaction():
        # Two installs at once take turns (cron.schedule's own upsert is not safe against a concurrent one).
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, SCHEDULE_LOCK))
        existing = _existing(conn, list(names.values()))
        for job, name in names.items():
            wanted = (JOBS[job].schedule, command(project, job))
            if existing.get(name) == wanted:
                action: Action = "unchanged"
            else:
                conn.execute("SELECT cron.schedule(%s, %s, %s)", (name, *wanted))
                action = "updated" if name in existing else "installed"
            log.info("pg_cron job %s (%s): %s", name, wanted[0], action)
            result.append(CronJob(job, name, *wanted, action))
    return result


def remove(conn: psycopg.Connection, project: Project) -> list[CronJob]:
    """Unschedule the database jobs this project installed; what each became."""
    pg_cron_version(conn)
    names = {job: cron_job_name(project, job) for job in DATABASE_JOBS}
    result = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, SCHEDULE_LOCK))
        existing = _existing(conn, list(names.values()))
        for job, name in names.items():
            if name in existing:
                conn.execute("SELECT cron.unschedule(%s)", (name,))
                result.append(CronJob(job, name, *existing[name], "removed"))
            else:
                result.append(CronJob(job, name, JOBS[job].schedule, command(project, job), "absent"))
    return result
