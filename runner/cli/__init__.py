"""The `runner` command line: a thin layer over the library. Each command parses, calls, prints.

Exit codes: 0 success; 1 error; 2 usage error; 3 `apply --check`: changes pending;
4 drift (an applied versioned file was edited); 5 lock timeout (another apply holds the lock).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from runner.command_index import HELP, LAZY_COMMANDS, help_page, option_help
from runner.command_index import lazy_help as _lazy_help  # noqa: F401 (re-exported for the tests)
from runner.errors import RunnerError

if TYPE_CHECKING:
    from pathlib import Path

EXIT_PENDING = 3


class Context:
    """What every command needs: the project and a database URL, both resolved lazily."""

    def __init__(self, database_url: str | None, project_dir: str | None):
        self._database_url = database_url
        self._project_dir = project_dir
        self._project = None
        self._url: str | None = None
        self._component_urls: dict[str, str] = {}

    @property
    def project(self):
        if self._project is None:
            from runner import project

            self._project = project.load(self._project_dir)
        return self._project

    def data_dir(self) -> Path:
        from runner import embedded, project

        sql_dir = self.project.sql_dir
        packaged = project.packaged_sql_dir()
        base = None if packaged is not None and sql_dir == packaged else sql_dir.parent
        return embedded.default_data_dir(base)

    @property
    def url(self) -> str:
        if self._url is None:
            if self._database_url:
                self._url = self._database_url
            else:
                from runner import embedded

                refusal = embedded.unattended_refusal()
                if refusal:
                    raise RunnerError(refusal)
                server = embedded.ensure(self.data_dir())
                click.echo(
                    f"runner: embedded PostgreSQL {server.version} in {server.data_dir} "
                    f"({'started' if server.started else 'running'}; `runner db url` prints its URL)",
                    err=True,
                )
                self._url = server.url
        return self._url

    def component_url(self, role: str) -> str:
        """The URL `runner serve` (role "app_role") or a job ("jobs_role") connects with: DATABASE_URL as
        given (the deployment picks the credential); in embedded mode a login role of that group role, never
        the superuser."""
        url = self.url
        if self._database_url:
            return url
        from runner import embedded

        if role not in self._component_urls:
            group = self.project.settings.get(role) or {"jobs_role": "checkout_jobs"}.get(role, role)
            login = embedded.SERVE_LOGIN if role == "app_role" else embedded.JOBS_LOGIN
            self._component_urls[role] = embedded.login_role_url(url, login, group)
        return self._component_urls[role]

    def connect(self, command: str = "runner", autocommit: bool = True, role: str | None = None):
        """A connection as the command's user, or with `role` as component_url(role) gives it."""
        from runner import database

        url = self.component_url(role) if role else self.url
        # The jobs' statements are cancelled by PostgreSQL past RUNNER_JOB_STATEMENT_TIMEOUT (issue 14).
        timeout = database.job_statement_timeout() if role == "jobs_role" else 0
        conn = database.connect(url, command=command, autocommit=autocommit)
        if timeout:
            database.set_statement_timeout(conn, timeout)
        return conn


def _from_environment(exc: click.BadParameter) -> str | None:
    """The environment variable a bad option value came from (PORT=abc for --port), or None."""
    from click.core import ParameterSource

    param, pctx = exc.param, exc.ctx
    if param is None or pctx is None or param.name is None:
        return None
    if pctx.get_parameter_source(param.name) is not ParameterSource.ENVIRONMENT:
        return None
    names = param.envvar if isinstance(param.envvar, list | tuple) else [param.envvar]
    return next((n for n in names if n and n in os.environ), None)


class RunnerGroup(click.Group):
    """Maps library errors to one `Error: ...` line and their exit code; never a traceback for them.
    Also loads the commands of LAZY_COMMANDS on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The help page from runner/command_index.py, the one `runner --help` prints without click: the
        lazy commands' help is read from their source, not by importing their modules."""
        extra = {
            name: command.short_help or command.help or ""
            for name, command in self.commands.items()
            if name not in LAZY_COMMANDS and not command.hidden
        }
        formatter.write(help_page(ctx.command_path, formatter.width, extra))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS and name not in self.commands:
            import importlib

            module, attr = LAZY_COMMANDS[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RunnerError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except click.BadParameter as exc:
            variable = _from_environment(exc)
            if variable is None:
                raise
            # A bad environment variable is a configuration error like Settings' own: one line, exit 1.
            click.echo(f"Error: {variable}={os.environ.get(variable, '')!r}: {exc.message}", err=True)
            ctx.exit(1)
        except Exception as exc:
            if type(exc).__module__.split(".")[0] != "psycopg":
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            sqlstate = getattr(exc, "sqlstate", None)
            click.echo(
                f"Error: database error{f' [SQLSTATE {sqlstate}]' if sqlstate else ''}: {first}", err=True
            )
            ctx.exit(1)


def emit(data: Any, fmt: str, text: str) -> None:
    if fmt == "json":
        import json

        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(text)


FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output for people (text) or machines (json).",
)


# The help texts are runner/command_index.py's, which prints this group's help page with or without click.
@click.group(cls=RunnerGroup, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", envvar="DATABASE_URL", metavar="URL", help=option_help("--database-url"))
@click.option(
    "--project-dir",
    envvar="RUNNER_PROJECT_DIR",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help=option_help("--project-dir"),
)
@click.option("-v", "--verbose", count=True, help=option_help("--verbose"))
@click.version_option(package_name="checkout-sessions", prog_name="runner", help=option_help("--version"))
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, project_dir: str | None, verbose: int) -> None:
    if verbose:
        import logging

        logging.basicConfig(
            level=logging.DEBUG if verbose > 1 else logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    ctx.obj = Context(database_url, project_dir)


def main() -> None:
    cli(prog_name="runner")
