"""`runner report`: list the reports of sql/reports/ and run one by name. Parsing and printing only;
the work is in runner/reporting/reports.py."""

from __future__ import annotations

import click

from runner.errors import ReportParameterError
from runner.reporting import reports


def _parse_params(pairs: tuple[str, ...], report: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ReportParameterError(f"report {report}: --param takes KEY=VALUE, got {pair!r}")
        values[key.strip()] = value
    return values


def _report_command(report: reports.Report) -> click.Command:
    """A command for one report, its help made from the report's header."""
    lines = [report.description, ""]
    if report.params:
        lines.append("\b\nParameters (--param NAME=VALUE):")
        for p in report.params:
            bounds = (f", min {p.minimum}" if p.minimum is not None else "") + (
                f", max {p.maximum}" if p.maximum is not None else ""
            )
            lines.append(f"  {p.name} ({p.type}, default {p.default_text}{bounds}): {p.description}")
        lines.append("")
    example = report.params[0].name if report.params else None
    lines.append("\b\nExamples:")
    lines.append(f"  runner report {report.name}")
    if example:
        lines.append(f"  runner report {report.name} --param {example}=... --format csv")
    lines.append(f"  runner report {report.name} --format json")

    @click.pass_obj
    def callback(obj, params: tuple[str, ...], fmt: str) -> None:
        values = _parse_params(params, report.name)
        report.bind(values)  # refuse bad values before connecting
        conn = obj.connect(f"report {report.name}")
        try:
            result = reports.run(conn, obj.project, report.name, values)
        finally:
            conn.close()
        click.echo(reports.render(result, fmt))

    return click.Command(
        report.name,
        callback=callback,
        help="\n".join(lines),
        short_help=report.description[:70] + ("..." if len(report.description) > 70 else ""),
        params=[
            click.Option(
                ["-p", "--param", "params"],
                multiple=True,
                metavar="NAME=VALUE",
                help="A report parameter (repeatable).",
            ),
            click.Option(
                ["--format", "fmt"],
                type=click.Choice(reports.FORMATS),
                default="table",
                show_default=True,
                help="table for people; csv or json (exact) for machines.",
            ),
        ],
    )


class ReportGroup(click.Group):
    """`runner report list` plus one subcommand per file of sql/reports/."""

    def _project(self, ctx: click.Context):
        obj = ctx.find_root().obj
        return obj.project if obj is not None else None

    def list_commands(self, ctx: click.Context) -> list[str]:
        project = self._project(ctx)
        names = [r.name for r in reports.available(project)] if project is not None else []
        return ["list", *names]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        project = self._project(ctx)
        if project is None:
            return None
        return _report_command(reports.get(project, name))


@click.group(cls=ReportGroup)
def report() -> None:
    """Run the named, parameterised reports of sql/reports/ (the reference's analytics, monitoring and
    troubleshooting queries).

    Parameters are typed by the report's header and passed to PostgreSQL as bound values. Output:
    an aligned table for people, or exact CSV / JSON for machines (JSON numbers for integers, strings
    for decimals so no digit is lost).

    \b
    Examples:
      runner report list
      runner report conversion_rate --param days=7
      runner report weekly_report --format csv > week.csv
      runner report recent_webhooks -p topic=checkout.session.completed -p limit=20 --format json
    """


@report.command(name="list")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for machines.",
)
@click.pass_obj
def list_(obj, fmt: str) -> None:
    """List every report with what it answers and its parameters.

    \b
    Examples:
      runner report list
      runner report list --format json | jq -r '.[].name'
    """
    text = reports.listing(reports.available(obj.project), fmt)
    if text:  # no reports: no output (JSON says [])
        click.echo(text)
