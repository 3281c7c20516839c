"""`runner test` (data tests) and `runner lint` (the project checked before it reaches a database)."""

from __future__ import annotations

import json

import click

from runner.cli import FORMAT
from runner.errors import DataTestsFailed


@click.command(name="test")
@click.option(
    "--select",
    "-s",
    "select",
    multiple=True,
    metavar="NAME",
    help="Only these tests: a name, a pattern (archived_*), or a table (its generic tests). Repeatable.",
)
@click.option(
    "--sample",
    type=click.IntRange(0, 1000),
    default=5,
    show_default=True,
    help="How many offending rows to show per failing test.",
)
@click.option("--list", "list_only", is_flag=True, help="List the tests and what each checks; run nothing.")
@FORMAT
@click.pass_obj
def test(obj, select: tuple[str, ...], sample: int, list_only: bool, fmt: str) -> None:
    """Run the data tests: each returns the rows that break one rule; PASS when none does.

    The tests are the queries of sql/tests/*.sql and the generic tests declared under [tests.<table>] in
    sql/project.toml (unique, not_null, accepted_values, relationships, expression). Each runs in its own
    read-only transaction. Exit 0 when all pass, 1 when any fails (or cannot run), 2 when --select
    matches nothing.

    \b
    Examples:
      runner test
      runner test --select rollup_matches_sessions --sample 20
      runner test --select 'archived_*' --select payment_checkout_sessions
      runner test --format json | jq '.[] | select(.passed | not) | .name'
      runner test --list
    """
    from runner.quality import datatests

    project = obj.project
    tests = datatests.select_tests(datatests.load(project), select)
    if list_only:
        if fmt == "json":
            click.echo(
                json.dumps(
                    [
                        {"name": t.name, "description": t.description, "kind": t.kind, "source": t.source}
                        for t in tests
                    ],
                    indent=2,
                )
            )
        else:
            width = max((len(t.name) for t in tests), default=0)
            click.echo("\n".join(f"{t.name:<{width}}  {t.description}" for t in tests) or "No data tests.")
        return
    conn = obj.connect("test")
    try:
        results = datatests.run(conn, project, sample=sample, tests=tests)
    finally:
        conn.close()
    if fmt == "json":
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        click.echo(datatests.to_text(results))
    failed = [r.name for r in results if not r.passed]
    if failed:
        raise DataTestsFailed(f"{len(failed)} of {len(results)} data tests failed: {', '.join(failed)}")


@click.command()
@click.argument("files", nargs=-1, metavar="[FILE]...")
@click.option(
    "--no-db", is_flag=True, help="Skip plpgsql_check: no database is used (templates and squawk only)."
)
@FORMAT
@click.pass_obj
def lint(obj, files: tuple[str, ...], no_db: bool, fmt: str) -> None:
    """Check the project before it reaches a database: Jinja, squawk, plpgsql_check.

    Every template must render (errors name the file and line); every versioned file's rendered SQL goes
    through squawk for DDL that locks existing tables (an index without CONCURRENTLY, a constraint
    validated at once, a type change that rewrites the table); every PL/pgSQL function body goes through
    plpgsql_check on a scratch database of the server (created and dropped), when the server has the
    extension; otherwise the output says they were not checked. Acknowledge a finding in its file with
    `-- lint: ignore <rule> because <reason>`. Exit 0 when clean, 1 on any finding.

    \b
    Examples:
      runner lint
      runner lint sql/tables/V100__add_coupon.sql --no-db
      DATABASE_URL=postgresql://postgres@localhost:5432/postgres runner lint --format json
      runner apply --check --lint          # in CI: lint, then exit 3 if files are pending
    """
    from runner.quality import lint as lint_mod

    def show(result) -> None:
        click.echo(json.dumps(result.as_dict(), indent=2) if fmt == "json" else result.to_text())

    lint_mod.lint(obj.project, None if no_db else obj.url, files, on_result=show)
