"""`runner doctor`: the reference's troubleshooting checks and more, each pass / warn / fail with a hint.

Schema and functions (the reference's "Verify Migration" and "Check function exists"), the rollup, the
expire job keeping up, stuck sessions ("Session Not Completing"), webhook failures ("Check webhook logs"),
errors by category and the database failures the service and the jobs met ("Check database logs"),
abandonment ("High Abandonment Rate") and the scheduled jobs.
Every question is answered by a report of sql/reports/ so a DBA can run the same query by hand.

A freshly applied database passes, except that jobs which never ran are a warn: on a live system a job
that never ran is worth an alert, and `--fail-on warn` says so; plain `runner doctor` still exits 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from runner import verify
from runner.project import Project
from runner.reporting import reports
from runner.reporting.alerts import Thresholds

if TYPE_CHECKING:
    import psycopg

Level = Literal["pass", "warn", "fail"]
# A job run still `running` after this long is probably stuck (each runs in batches of seconds).
RUNNING_TOO_LONG = dt.timedelta(hours=1)
LEVELS: tuple[Level, ...] = ("pass", "warn", "fail")


@dataclass(frozen=True)
class JobSchedule:
    name: str
    every: str
    overdue_after: dt.timedelta


def schedules(thresholds: Thresholds) -> tuple[JobSchedule, ...]:
    """The jobs cron runs (runner/jobs/catalogue.py) and when each counts as overdue (expire's from the
    thresholds). A late rollup keeps reports exact, only slower as unfolded deltas pile up."""
    from runner.jobs.catalogue import JOBS

    return tuple(
        JobSchedule(
            job.name,
            job.every,
            dt.timedelta(hours=thresholds.expire_overdue_hours)
            if job.name == "expire"
            else job.overdue_after,
        )
        for job in JOBS.values()
    )


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str
    hint: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return f"{self.level.upper():<4}  {self.name}: {self.detail}" + (
            f"  -> {self.hint}" if self.hint else ""
        )


def at_least(level: Level, checks: list[Check]) -> list[Check]:
    """The checks whose level is `level` or worse."""
    return [c for c in checks if LEVELS.index(c.level) >= LEVELS.index(level)]


def run(
    conn: psycopg.Connection,
    project: Project,
    thresholds: Thresholds | None = None,
    now: dt.datetime | None = None,
) -> list[Check]:
    """Every check, in order. A check that cannot run (a missing table) fails; it never raises."""
    import psycopg

    thresholds = thresholds or Thresholds.from_env()
    checks = [_server(conn), _schema_status(conn, project), _structure(conn, project)]
    if checks[-1].level == "fail":
        return checks  # the rest read tables that are not there
    for check in (_rollup, _expiry, _stuck, _webhooks, _errors, _database_errors, _abandonment):
        try:
            checks.append(check(conn, project, thresholds))
        except psycopg.Error as exc:
            checks.append(
                Check(check.__name__.strip("_"), "fail", f"could not run: {str(exc).splitlines()[0]}")
            )
    checks.extend(_jobs(conn, project, thresholds, now))
    return checks


def _report(conn, project, name: str, **params) -> list[dict]:
    return reports.run(conn, project, name, {k: str(v) for k, v in params.items()}).records()


def _server(conn) -> Check:
    version = conn.execute("SHOW server_version").fetchone()[0]
    return Check("database", "pass", f"PostgreSQL {version}, connected")


def _schema_status(conn, project) -> Check:
    from runner import migrate

    if not migrate.history_exists(conn, project):
        return Check("migrations", "fail", "the project was never applied here", "run `runner apply`")
    states: dict[str, list[str]] = {}
    for f in migrate.status(conn, project):
        states.setdefault(f.state, []).append(f.name)
    if states.get("drifted"):
        return Check(
            "migrations",
            "fail",
            f"drifted: {', '.join(states['drifted'])}",
            "see `runner status`; revert the edit and add a new file, or `runner baseline FILE`",
        )
    pending = states.get("pending", []) + states.get("changed", [])
    if pending:
        return Check(
            "migrations",
            "warn",
            f"{len(pending)} file(s) not applied: {', '.join(pending[:3])}"
            + ("..." if len(pending) > 3 else ""),
            "run `runner apply`",
        )
    return Check("migrations", "pass", f"{len(states.get('applied', []))} files applied, none pending")


def _structure(conn, project) -> Check:
    failed = [c for c in verify.run(conn, project) if not c.ok]
    if failed:
        return Check(
            "tables, functions, indexes",
            "fail",
            "; ".join(f"{c.name}: {c.detail}" for c in failed),
            "run `runner apply`, then `runner verify`",
        )
    return Check(
        "tables, functions, indexes",
        "pass",
        f"{len(verify.TABLES)} tables, {len(verify.FUNCTIONS)} functions, {len(verify.INDEXES)} indexes; "
        "smoke test ok",
    )


def _rollup(conn, project, thresholds) -> Check:
    diff = _report(conn, project, "rollup_check", hours=24)
    if diff:
        return Check(
            "rollup",
            "fail",
            f"checkout_session_rollup differs from the table in {len(diff)} hour(s)",
            "run SELECT rebuild_checkout_session_rollup(); and check its triggers exist",
        )
    return Check("rollup", "pass", "checkout_session_rollup equals the table over the last 24 hours")


def _expiry(conn, project, thresholds) -> Check:
    grace = f"{int(thresholds.expire_overdue_hours * 60)} minutes"
    late = _report(conn, project, "daily_health", expiry_grace=grace)[0]["pending_past_expiry"]
    if late:
        return Check(
            "expiry",
            "warn",
            f"{late} pending session(s) more than {grace} past expires_at",
            "run `runner job expire` and check its schedule",
        )
    return Check("expiry", "pass", f"no pending session more than {grace} past expires_at")


def _stuck(conn, project, thresholds) -> Check:
    rows = _report(
        conn,
        project,
        "stuck_sessions",
        min_age=f"{thresholds.stuck_after_minutes} minutes",
        limit=thresholds.stuck_sessions + 1,
    )
    what = f"pending with a Stripe session id for over {thresholds.stuck_after_minutes} min"
    if len(rows) > thresholds.stuck_sessions:
        return Check(
            "stuck sessions",
            "warn",
            f"more than {thresholds.stuck_sessions} {what} (ALERT_STUCK_SESSIONS)",
            "`runner report stuck_sessions`; compare with `runner report recent_webhooks`",
        )
    return Check("stuck sessions", "pass", f"{len(rows)} {what}")


def _webhooks(conn, project, thresholds) -> Check:
    rows = {r["status"]: r for r in _report(conn, project, "webhook_outcomes", hours=24)}
    failed = rows["failed"]["events"]
    backlog = rows["received"]["oldest_minutes"]
    summary = ", ".join(f"{s} {r['events']}" for s, r in rows.items() if r["events"])
    if failed > thresholds.webhook_failures:
        return Check(
            "webhooks",
            "warn",
            f"{failed} failed in 24 h (ALERT_WEBHOOK_FAILURES={thresholds.webhook_failures})",
            "`runner report recent_webhooks -p status=failed -p topic=...`; Stripe retries them",
        )
    if backlog is not None and backlog > 10:
        return Check(
            "webhooks",
            "warn",
            f"an event has waited {backlog} min unprocessed",
            "is `runner serve` processing? see `runner report recent_webhooks -p status=received`",
        )
    rejected = rows["rejected"]["events"]
    if rejected:  # signed by Stripe yet not processed as sent: Stripe will not retry, a person must look
        return Check(
            "webhooks",
            "warn",
            f"{rejected} signed event(s) rejected in 24 h ({summary})",
            "`runner report recent_webhooks -p status=rejected -p topic=all` (error: the reason); "
            "the body as sent is webhook_events.raw_body",
        )
    return Check("webhooks", "pass", f"last 24 h: {summary or 'no events'}")


def _errors(conn, project, thresholds) -> Check:
    rows = _report(conn, project, "error_summary", days=1)
    total = sum(r["errors"] for r in rows)
    summary = ", ".join(f"{r['category']} {r['errors']}" for r in rows) or "none"
    if total > thresholds.errors_24h:
        return Check(
            "errors",
            "warn",
            f"{total} in 24 h ({summary}; ALERT_ERRORS_24H={thresholds.errors_24h})",
            "`runner report error_summary -p days=1`",
        )
    return Check("errors", "pass", f"last 24 h: {summary}")


def _database_errors(conn, project, thresholds) -> Check:
    rows = _report(conn, project, "database_errors", hours=24)
    failures = sum(r["failures"] for r in rows)
    if failures:
        summary = ", ".join(f"{r['source']} {r['kind']} {r['failures']}" for r in rows[:3])
        return Check(
            "database errors",
            "warn",
            f"{failures} failure(s) in 24 h ({summary}); last: "
            f"{max(rows, key=lambda r: r['last_logged'])['last_message'][:200]}",
            "SELECT * FROM error_logs WHERE category = 'database' ORDER BY created_at DESC; "
            "`runner report database_errors`",
        )
    return Check("database errors", "pass", "no database failure logged in 24 h")


def _abandonment(conn, project, thresholds) -> Check:
    row = _report(conn, project, "conversion_rate", days=7)[0]
    if row["sessions"] < thresholds.min_sessions or row["conversion_rate"] is None:
        return Check(
            "abandonment",
            "pass",
            f"{row['sessions']} sessions in 7 days, fewer than {thresholds.min_sessions}: not judged",
        )
    abandoned = 100 - float(row["conversion_rate"])
    detail = f"{abandoned:.1f}% of {row['sessions']} sessions in 7 days not completed"
    if abandoned > thresholds.abandonment_rate:
        return Check(
            "abandonment",
            "warn",
            f"{detail} (ALERT_ABANDONMENT_RATE={thresholds.abandonment_rate:g})",
            "`runner report abandonment_by_plan -p days=7`, `runner report stuck_sessions`",
        )
    return Check("abandonment", "pass", detail)


def _jobs(conn, project, thresholds, now: dt.datetime | None) -> list[Check]:
    now = now or conn.execute("SELECT now()").fetchone()[0]
    status = {r["job"]: r for r in _report(conn, project, "job_status")}
    checks = []
    for job in schedules(thresholds):
        name = f"job {job.name}"
        row = status.get(job.name)
        hint = f"schedule `runner job {job.name}` ({job.every}); see `runner job history`"
        if row is None:
            checks.append(Check(name, "warn", "never ran", hint))
            continue
        success = row["last_success_at"]
        age = _age(now - success) if success else None
        if row["running_since"] and now - row["running_since"] > RUNNING_TOO_LONG:
            checks.append(
                Check(
                    name,
                    "warn",
                    f"running since {_age(now - row['running_since'])} ago",
                    "is it stuck? see pg_stat_activity",
                )
            )
        elif success is None or now - success > job.overdue_after:
            since = f"last success {age} ago" if success else "never succeeded"
            checks.append(
                Check(
                    name,
                    "fail",
                    f"overdue: {since} (runs {job.every}, overdue after "
                    f"{_age(job.overdue_after)}); last run {row['last_outcome']}"
                    + (f": {row['last_error']}" if row["last_error"] else ""),
                    hint,
                )
            )
        elif row["last_outcome"] == "failed":
            checks.append(
                Check(
                    name,
                    "warn",
                    f"last run failed: {row['last_error'] or '?'} (last success {age} ago)",
                    hint,
                )
            )
        else:
            checks.append(Check(name, "pass", f"last success {age} ago ({job.every})"))
    return checks


def _age(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
