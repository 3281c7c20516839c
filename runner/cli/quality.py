"""`runner test` (data tests) and `runner lint` (the project checked before it reaches a database)."""

from __future__ import annotations

import json

import click

from runner.cli import FORMAT
from runner.errors import DataTestsFailed


@click.command(name="test")
@click.option("--select", "-s", "select", multiple=True, metavar="NAME",
              help="Only these tests: a name, a pattern (archived_*), or a table (its generic tests). Repeatable.")
@click.option("--sample", type=click.IntRange(0, 1000), default=5, show_default=True,
              help="How many offending rows to show per failing test.")
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
            click.echo(json.dumps([{"name": t.name, "description": t.description, "kind": t.kind,
                                    "source": t.source} for t in tests], indent=2))
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
