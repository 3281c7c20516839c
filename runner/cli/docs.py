"""`runner docs -o DIR`: write the documentation site of the project and the live database."""

from __future__ import annotations

import click

from runner.cli import FORMAT, Context, emit


@click.command()
@click.option(
    "-o",
    "--output",
    "folder",
    required=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Folder to write the site into (created; earlier pages replaced).",
)
@click.option("--no-tests", is_flag=True, help="List the data tests without running them.")
@FORMAT
@click.pass_obj
def docs(obj: Context, folder: str, no_tests: bool, fmt: str) -> None:
    """Write a static documentation site from the project and the live catalogue.

    Tables (columns, types, defaults, constraints, indexes, triggers, comments, privileges), functions
    (signature, comment, who may execute them, the -- depends: graph as a picture), reports and their
    parameters, the data tests with the result of running them now (read-only), the applied history.
    Plain HTML that works offline: open DIR/index.html.

    \b
    Examples:
      runner docs -o site && xdg-open site/index.html
      runner docs -o site --no-tests             # a large database: list the tests, do not run them
      DATABASE_URL=postgresql://u@staging/app runner docs -o /srv/www/schema --format json
    """
    from runner.quality import docsite

    conn = obj.connect("docs")
    try:
        site = docsite.build(
            conn,
            obj.project,
            folder,
            run_tests=not no_tests,
            progress=lambda message: click.echo(message, err=True),
        )
    finally:
        conn.close()
    tests = (
        f"{site.tests} data tests ({site.failing_tests} failing)"
        if not no_tests
        else f"{site.tests} data tests"
    )
    emit(
        site.as_dict(),
        fmt,
        f"Wrote {len(site.pages)} pages to {site.folder}: {site.tables} tables and views, "
        f"{site.functions} functions, {site.reports} reports, {tests}. Open {site.folder / 'index.html'}",
    )
