"""The `runner` command line: a thin layer over the library. Each command parses, calls, prints.

Exit codes: 0 success; 1 error; 2 usage error; 3 `apply --check`: changes pending;
4 drift (an applied versioned file was edited); 5 lock timeout (another apply holds the lock).
"""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING, Any

import click

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

        cache = self.__dict__.setdefault("_component_urls", {})
        if role not in cache:
            group = self.project.settings.get(role) or {"jobs_role": "checkout_jobs"}.get(role, role)
            login = embedded.SERVE_LOGIN if role == "app_role" else embedded.JOBS_LOGIN
            cache[role] = embedded.login_role_url(url, login, group)
        return cache[role]

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


# Commands that live in other modules, imported only when used (keeps `runner --help` fast).
# name -> "module:attribute"
LAZY_COMMANDS: dict[str, str] = {
    "apply": "runner.cli.migrate:apply",
    "status": "runner.cli.migrate:status",
    "compile": "runner.cli.migrate:compile_",
    "verify": "runner.cli.migrate:verify",
    "baseline": "runner.cli.migrate:baseline",
    "db": "runner.cli.db:db",
    "checkout": "runner.cli.checkout:checkout",
    "webhook": "runner.cli.checkout:webhook",
    "serve": "runner.cli.serve:serve",
    "job": "runner.cli.jobs:job",
    "schedule": "runner.cli.jobs:schedule",
    "report": "runner.cli.reports:report",
    "doctor": "runner.cli.doctor:doctor",
    "dashboard": "runner.cli.dashboard:dashboard",
    "test": "runner.cli.quality:test",
    "lint": "runner.cli.quality:lint",
    "demo": "runner.cli.demo:demo",
    "docs": "runner.cli.docs:docs",
    "adopt": "runner.cli.adopt:adopt",
}


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

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of --help, without importing the lazy commands' modules (their short help
        is read from their source): `runner --help` stays as fast as `runner` itself."""
        rows: list[tuple[str, str | None]] = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS and name not in self.commands:
                rows.append((name, _lazy_help(LAZY_COMMANDS[name])))
                continue
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, None))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in rows)
        lines = []
        for name, help_text in rows:
            if help_text is None:
                help_text = self.get_command(ctx, name).get_short_help_str(limit)
            else:
                help_text = click.utils.make_default_short_help(help_text, limit)
            lines.append((name, help_text))
        with formatter.section("Commands"):
            formatter.write_dl(lines)

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


def _lazy_help(target: str) -> str:
    """The help of a lazy command ("module:attribute") from its module's source, without importing it:
    the decorator's help=/short_help= or the function's docstring. Empty when it cannot be found."""
    import ast

    module, attr = target.split(":")
    source = _module_source(module)
    try:
        # Only the command's own lines (decorators, def, body): parsing every module whole was most of
        # `runner --help`'s time. The whole module when those lines do not stand alone.
        tree = ast.parse(_definition(source, attr))
    except SyntaxError:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return ""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == attr:
            for decorator in node.decorator_list:
                func = getattr(decorator, "func", None)
                if getattr(func, "attr", getattr(func, "id", None)) not in ("command", "group"):
                    continue  # an option's help=, not the command's
                for keyword in decorator.keywords:
                    if keyword.arg in ("short_help", "help") and isinstance(keyword.value, ast.Constant):
                        return str(keyword.value.value)
            return ast.get_docstring(node) or ""
    return ""


@functools.cache
def _module_source(module: str) -> str:
    """A module's source text, without importing it; empty when it cannot be found or read."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)
        with open(spec.origin, encoding="utf-8") as source:
            return source.read()
    except (ImportError, ValueError, AttributeError, TypeError, OSError):
        return ""  # the command itself will say what is wrong when used


def _definition(source: str, name: str) -> str:
    """The top-level `def name` of `source`: its decorators, signature and docstring, as source that parses
    on its own ("" when there is none)."""
    lines = source.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"def {name}(")), None)
    if start is None:
        return ""
    first = start
    while first > 0 and lines[first - 1][:1] in ("@", " ", "\t", ")"):  # decorators and their continuations
        first -= 1
    end = start
    while end < len(lines) - 1 and not lines[end].rstrip().endswith(":"):  # a signature over several lines
        end += 1
    body = end + 1
    while body < len(lines) and not lines[body].strip():
        body += 1
    quote = lines[body].strip()[:3] if body < len(lines) else ""
    if quote not in ('"""', "'''"):
        return "\n".join([*lines[first : end + 1], "    pass"])
    close = (
        body
        if lines[body].strip().count(quote) >= 2
        else next((i for i in range(body + 1, len(lines)) if quote in lines[i]), len(lines) - 1)
    )
    return "\n".join(lines[first : close + 1])


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


@click.group(cls=RunnerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="DATABASE_URL",
    metavar="URL",
    help="PostgreSQL URL (env DATABASE_URL). Without it, an embedded PostgreSQL is used.",
)
@click.option(
    "--project-dir",
    envvar="RUNNER_PROJECT_DIR",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Folder holding sql/ (env RUNNER_PROJECT_DIR). Default: ./sql, else the packaged one.",
)
@click.option("-v", "--verbose", count=True, help="Log progress to stderr (-vv for debug).")
@click.version_option(package_name="checkout-sessions", prog_name="runner")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, project_dir: str | None, verbose: int) -> None:
    """Render, apply and run the checkout-sessions SQL project.

    \b
    Examples:
      runner apply                       # embedded PostgreSQL, whole project
      DATABASE_URL=postgresql://u@db/app runner apply --check
      runner status --format json
    """
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
