"""`runner dashboard`: write the self-contained HTML dashboard to a file (or stdout)."""

from __future__ import annotations

from pathlib import Path

import click

from runner.errors import RunnerError


@click.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default="-",
    show_default=True,
    metavar="FILE",
    help="Where to write the HTML (- for stdout).",
)
@click.pass_obj
def dashboard(obj, output: str) -> None:
    """Write the dashboard: one self-contained HTML file (no network needed to open it) with sessions and
    conversion per day over 30 days, abandonment by plan, the status mix, time to complete, Stripe
    events and jobs. The same page is served at /dashboard by `runner serve` (service token).

    \b
    Examples:
      runner dashboard -o report.html && xdg-open report.html
      DATABASE_URL=postgresql://ro@db/app runner dashboard -o /var/www/checkout.html   # from cron
    """
    from runner.reporting import dashboard as dashboard_mod

    conn = obj.connect("dashboard")
    try:
        html = dashboard_mod.render(conn, obj.project)
    finally:
        conn.close()
    if output == "-":
        click.echo(html, nl=False)
        return
    try:
        Path(output).write_text(html, encoding="utf-8")
    except (OSError, ValueError) as exc:  # a folder, a missing parent, no permission, a NUL in the name
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RunnerError(f"cannot write the dashboard to {output!r}: {reason}") from None
    click.echo(f"Wrote {output} ({len(html.encode()) // 1024} KiB).", err=True)
