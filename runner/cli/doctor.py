"""`runner doctor`: print each health check; exit non-zero when any is at or above --fail-on."""

from __future__ import annotations

import json

import click

from runner.cli import FORMAT
from runner.errors import HealthCheckFailed


@click.command()
@click.option(
    "--fail-on",
    type=click.Choice(["fail", "warn", "never"]),
    default="fail",
    show_default=True,
    help="Exit 1 when a check is at this level or worse (warn: alert on thresholds too).",
)
@FORMAT
@click.pass_obj
def doctor(obj, fail_on: str, fmt: str) -> None:
    """Check the database and the payment flow: schema, functions, indexes, rollup, expiry, stuck
    sessions, webhook failures, errors by category, abandonment and the scheduled jobs.

    Each check prints PASS, WARN or FAIL with a one-line hint. Alert thresholds come from the
    environment (ALERT_ABANDONMENT_RATE, ALERT_STUCK_SESSIONS, ALERT_WEBHOOK_FAILURES,
    ALERT_EXPIRE_OVERDUE_HOURS, ...; see the README). Exit 0 when nothing is at --fail-on or worse,
    1 otherwise: cron or a monitor alerts on the exit code.

    \b
    Examples:
      runner doctor
      runner doctor --fail-on warn || page-oncall "checkout health"
      ALERT_ABANDONMENT_RATE=80 runner doctor --fail-on warn --format json
    """
    from runner.reporting import doctor as doctor_mod
    from runner.reporting.alerts import Thresholds

    thresholds = Thresholds.from_env()
    conn = obj.connect("doctor")
    try:
        checks = doctor_mod.run(conn, obj.project, thresholds)
    finally:
        conn.close()
    if fmt == "json":
        click.echo(json.dumps([c.as_dict() for c in checks], indent=2))
    else:
        for check in checks:
            click.echo(check.line())
        counts = {level: sum(c.level == level for c in checks) for level in doctor_mod.LEVELS}
        click.echo(f"{counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail")
    if fail_on != "never":
        bad = doctor_mod.at_least(fail_on, checks)  # type: ignore[arg-type]
        if bad:
            raise HealthCheckFailed(
                f"{len(bad)} check(s) at {fail_on} or worse: {', '.join(c.name for c in bad)}"
            )
