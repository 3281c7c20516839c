"""`runner schedule --pg-cron`: the jobs that need no outside service, scheduled inside the database by pg_cron.

Each pg_cron job is one SQL call, `SELECT <schema>.run_scheduled_job('<job>')` (sql/functions/
run_scheduled_job.sql): it takes the same advisory lock as `runner job <job>` and records its run in job_runs,
so cron and pg_cron never run a job twice at once. Installing again updates the jobs in place (cron.schedule
replaces a job of the same name); `--remove` unschedules them. Works on any PostgreSQL with the extension
(Supabase: Database > Extensions > pg_cron): in the database pg_cron runs in (`cron.database_name`), or, from
another database of the server, through `cron.schedule_in_database` (pg_cron 1.4 or later).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from psycopg.conninfo import make_conninfo

from runner.errors import PgCronError
from runner.jobs.catalogue import JOBS
from runner.locks import LOCK_CLASS, SCHEDULE_LOCK

if TYPE_CHECKING:
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


def cron_job_name(project: Project, job: str, database: str | None = None) -> str:
    """pg_cron's name of a job: `checkout-sessions-expire`, with the schema when it is not public and the
    database when the jobs are scheduled from pg_cron's database for another one."""
    parts = ["checkout-sessions", database, None if project.schema == "public" else project.schema, job]
    return "-".join(p for p in parts if p)


def command(project: Project, job: str) -> str:
    """The one SQL call pg_cron runs for `job`."""
    return f"SELECT {project.schema}.run_scheduled_job('{job}')"


def pg_cron_version(conn: psycopg.Connection) -> str | None:
    """The version of pg_cron installed in the connection's database (None: not there)."""
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'").fetchone()
    return None if row is None else row[0]


@contextmanager
def _cron_database(conn: psycopg.Connection) -> Iterator[tuple[psycopg.Connection, str | None]]:
    """Where to schedule from: this connection when pg_cron is in this database; else a connection to pg_cron's
    own database (cron.database_name) and this database's name, which pg_cron >= 1.4 schedules jobs for."""
    if pg_cron_version(conn) is not None:
        yield conn, None
        return
    here = conn.info.dbname
    where = conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()[0]
    if not where:
        raise PgCronError(
            f"pg_cron is not installed in database {here!r}: the server must preload it "
            f"(shared_preload_libraries = 'pg_cron', cron.database_name = '{here}' in postgresql.conf, restart), "
            "then CREATE EXTENSION pg_cron; (on Supabase: Database > Extensions > pg_cron)"
        )
    if where == here:
        raise PgCronError(
            f"pg_cron is not installed in database {here!r}: CREATE EXTENSION pg_cron; (as a "
            "superuser; on Supabase: Database > Extensions > pg_cron)"
        )
    try:
        cron_conn = psycopg.connect(
            make_conninfo(conn.info.dsn, dbname=where, password=conn.info.password), autocommit=True
        )
    except psycopg.Error as exc:
        raise PgCronError(
            f"pg_cron runs in database {where!r} on this server (cron.database_name) and "
            f"connecting to it failed: {' '.join(str(exc).split())}"
        ) from None
    try:
        version = pg_cron_version(cron_conn)
        if version is None:
            raise PgCronError(
                f"pg_cron is not installed in database {where!r} (cron.database_name): "
                f"CREATE EXTENSION pg_cron; there as a superuser"
            )
        if tuple(int(x) for x in re.findall(r"\d+", version)[:2]) < (1, 4):
            raise PgCronError(
                f"pg_cron {version} schedules only in its own database {where!r}: apply the project "
                "there, or upgrade pg_cron to 1.4 or later (cron.schedule_in_database)"
            )
        yield cron_conn, here
    finally:
        cron_conn.close()


def _existing(conn: psycopg.Connection, names: list[str], database: str) -> dict[str, tuple[str, str]]:
    # cron.job shows each user only their own jobs (its row-level security); names are unique per user.
    rows = conn.execute(
        "SELECT jobname, schedule, command FROM cron.job WHERE jobname = ANY(%s) AND database = %s",
        (names, database),
    )
    return {name: (schedule, cmd) for name, schedule, cmd in rows}


def install(conn: psycopg.Connection, project: Project) -> list[CronJob]:
    """Schedule (or update in place) the database jobs with their default schedules; what each became."""
    if (
        conn.execute("SELECT to_regprocedure(%s)", (f"{project.schema}.run_scheduled_job(text)",)).fetchone()[
            0
        ]
        is None
    ):
        raise PgCronError(
            f"{project.schema}.run_scheduled_job does not exist in database {conn.info.dbname!r}: "
            "run `runner apply` first"
        )
    target = conn.info.dbname
    with _cron_database(conn) as (cron, elsewhere):
        names = {job: cron_job_name(project, job, elsewhere) for job in DATABASE_JOBS}
        result = []
        with cron.transaction():
            # Two installs at once take turns (cron.schedule's own upsert is not safe against a concurrent one).
            cron.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, SCHEDULE_LOCK))
            existing = _existing(cron, list(names.values()), target)
            for job, name in names.items():
                wanted = (JOBS[job].schedule, command(project, job))
                if existing.get(name) == wanted:
                    action: Action = "unchanged"
                else:
                    _schedule(cron, name, *wanted, elsewhere)
                    action = "updated" if name in existing else "installed"
                log.info("pg_cron job %s (%s): %s", name, wanted[0], action)
                result.append(CronJob(job, name, *wanted, action))
    return result


def _schedule(cron: psycopg.Connection, name: str, schedule: str, sql: str, database: str | None) -> None:
    if database is None:
        cron.execute("SELECT cron.schedule(%s, %s, %s)", (name, schedule, sql))
        return
    try:
        cron.execute("SELECT cron.schedule_in_database(%s, %s, %s, %s)", (name, schedule, sql, database))
    except psycopg.errors.InsufficientPrivilege:
        raise PgCronError(
            f"{cron.info.user} may not schedule jobs for another database: a superuser grants it with GRANT EXECUTE "
            f"ON FUNCTION cron.schedule_in_database(text, text, text, text, text, boolean) TO {cron.info.user};"
        ) from None


def remove(conn: psycopg.Connection, project: Project) -> list[CronJob]:
    """Unschedule the database jobs this project installed; what each became."""
    target = conn.info.dbname
    with _cron_database(conn) as (cron, elsewhere):
        names = {job: cron_job_name(project, job, elsewhere) for job in DATABASE_JOBS}
        result = []
        with cron.transaction():
            cron.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, SCHEDULE_LOCK))
            existing = _existing(cron, list(names.values()), target)
            for job, name in names.items():
                if name in existing:
                    cron.execute("SELECT cron.unschedule(%s::name)", (name,))
                    result.append(CronJob(job, name, *existing[name], "removed"))
                else:
                    result.append(CronJob(job, name, JOBS[job].schedule, command(project, job), "absent"))
    return result
