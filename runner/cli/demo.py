"""`runner demo`: fill the (embedded) database with a synthetic quarter of checkouts."""

from __future__ import annotations

import click

from runner.cli import FORMAT, Context, emit


@click.command()
@click.option(
    "--seed", type=int, default=1, show_default=True, help="Same seed, same data (for the same day)."
)
@click.option(
    "--sessions",
    type=click.IntRange(min=1, max=5_000_000),
    default=6_000,
    show_default=True,
    help="Checkout sessions over the quarter.",
)
@click.option(
    "--reset", is_flag=True, help="Empty the data tables first (users, sessions, events, emails, ...)."
)
@click.option("--yes", is_flag=True, help="Allow a database other than the embedded default (DATABASE_URL).")
@FORMAT
@click.pass_obj
def demo(obj: Context, seed: int, sessions: int, reset: bool, yes: bool, fmt: str) -> None:
    """Fill the database with a realistic quarter of synthetic checkouts.

    Plans, users, conversions, abandonment, retries, Stripe webhook events, verification and reminder
    emails, errors and job runs, so `runner report`, `runner doctor`, `runner dashboard` and `runner docs`
    show something on the first day. Applies the project first if needed; writes only into an empty
    database (or after --reset). Refuses any database but the embedded default unless --yes. Progress
    goes to stderr.

    \b
    Examples:
      runner demo                        # the embedded PostgreSQL, seed 1
      runner demo --reset --seed 7       # start over with other data
      DATABASE_URL=postgresql://u@staging/app runner demo --yes --sessions 50000
    """
    from runner.database import redact
    from runner.quality import demo as demo_mod

    url = obj._database_url
    demo_mod.check_target(
        embedded=url is None, yes=yes, where=redact(f"DATABASE_URL {url}", url) if url else ""
    )
    result = demo_mod.run(
        lambda: obj.connect("demo"),
        obj.project,
        seed=seed,
        sessions=sessions,
        empty_first=reset,
        progress=lambda message: click.echo(message, err=True),
    )
    emit(
        result.as_dict(),
        fmt,
        result.summary() + "\nNext: runner report list, runner doctor, "
        "runner dashboard -o dashboard.html, runner docs -o site",
    )
