"""`runner adopt`: take over a database built from the reference's scripts (docs/adopting.md)."""

from __future__ import annotations

import json
import sys

import click

from runner.cli import FORMAT
from runner.errors import AdoptionError

EXIT_WOULD_CHANGE = 3


@click.command()
@click.option(
    "--check",
    is_flag=True,
    help="Only inspect and print the plan; change nothing. Exit 0: nothing to do, 3: adopt would change something.",
)
@FORMAT
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0.01),
    default=0.5,
    show_default=True,
    help="Seconds a step may wait for a table lock (the app's queries queue behind it meanwhile) "
    "before it backs off and tries again.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Rows changed per short transaction when resolving dirty rows.",
)
@click.pass_obj
def adopt(obj, check: bool, fmt: str, lock_timeout: float, batch_size: int) -> None:
    """Adopt a database built from the reference's create-payment-checkout-sessions.sql: upgrade its
    tables in place, resolve the rows that break the project's rules (each change logged in
    runner_adoption_log), replace its functions (same names and parameters), then record it as `runner
    apply` would have built it. The tables keep serving while it runs; running it again is safe.

    Back up first, and try it on a staging copy (docs/adopting.md). Exit 0: nothing to do (or done),
    3 (--check): adopt would change something, 1: error (one line; nothing half-applied, run it again).

    \b
    Examples:
      runner adopt --check                 # the plan: objects, differences, dirty rows by rule
      runner adopt --check --format json   # the same for a pipeline
      runner adopt                         # carry it out
      runner adopt --lock-timeout 0.2      # even shorter waits behind the app's transactions
    """
    from runner.adoption import execute

    if check:
        plan = execute.check(lambda: obj.connect("adopt"), obj.project)
        if fmt == "json":
            click.echo(json.dumps(plan.as_dict(), indent=2, default=str))
        else:
            click.echo(plan.to_text())
        if plan.blockers:
            raise AdoptionError(
                f"cannot adopt: {len(plan.blockers)} thing(s) to fix by hand first (listed above)"
            )
        sys.exit(0 if plan.nothing_to_do else EXIT_WOULD_CHANGE)

    def progress(message: str) -> None:
        if fmt == "text":
            click.echo(message)

    result = execute.adopt(
        lambda: obj.connect("adopt"),
        obj.project,
        lock_timeout=lock_timeout,
        batch=batch_size,
        on_step=progress,
    )
    if fmt == "json":
        click.echo(json.dumps(result.as_dict(), indent=2, default=str))
    elif result.plan.nothing_to_do:
        click.echo(result.plan.to_text())
    else:
        resolved = sum(result.resolved.values())
        click.echo(
            f"Adopted in {result.seconds:.1f}s: {result.steps} step(s), {resolved} row(s) resolved "
            f"(see runner_adoption_log), {len(result.recorded)} version(s) recorded, "
            f"{len(result.applied)} file(s) applied, {result.lock_retries} lock retries."
        )
