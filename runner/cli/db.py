"""`runner db url|start|stop`: the embedded PostgreSQL used when no DATABASE_URL is given."""

from __future__ import annotations

import click

from runner.cli import Context
from runner.errors import RunnerError


@click.group()
def db() -> None:
    """The embedded PostgreSQL used when no DATABASE_URL is given.

    \b
    Examples:
      runner db url                      # connection URL, e.g. for psql "$(runner db url)"
      runner db stop
    """


@db.command()
@click.pass_obj
def url(obj: Context) -> None:
    """Print the database URL (starting the embedded server if needed).

    \b
    Examples:
      psql "$(runner db url)" -c 'SELECT count(*) FROM payment_checkout_sessions'
    """
    click.echo(obj.url)


@db.command()
@click.pass_obj
def start(obj: Context) -> None:
    """Start the embedded PostgreSQL (or report the running one).

    \b
    Examples:
      runner db start
    """
    if obj._database_url:
        raise RunnerError("DATABASE_URL/--database-url is set: the embedded server is not used")
    click.echo(obj.url)


@db.command()
@click.pass_obj
def stop(obj: Context) -> None:
    """Stop the embedded PostgreSQL. Its data stays in the project folder.

    \b
    Examples:
      runner db stop
    """
    from runner import embedded

    data_dir = obj.data_dir()
    if embedded.stop(data_dir):
        click.echo(f"Stopped the embedded PostgreSQL in {data_dir}.")
    else:
        click.echo(f"No embedded PostgreSQL running in {data_dir}.")
