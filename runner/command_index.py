"""What the `runner` command offers, described without click: its commands, its options, its help page.

The click group (runner/cli/__init__.py) takes its help text and options' help from here and prints
`runner --help` with `help_page`; `runner.launch` prints the same page without importing click. Each
command's one-line help is read from its module's source (the decorator's help= or the docstring),
without importing the module: listing nineteen commands must not load what they need to run.
"""

from __future__ import annotations

import functools

from runner.help_format import HelpFormatter, cleandoc, short_help

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

USAGE = "[OPTIONS] COMMAND [ARGS]..."

# The group's help (as click shows it: no leading indentation; `\b` keeps a paragraph as written).
HELP = """Render, apply and run the checkout-sessions SQL project.

\b
Examples:
  runner apply                       # embedded PostgreSQL, whole project
  DATABASE_URL=postgresql://u@db/app runner apply --check
  runner status --format json"""

# The group's options, in click's order (its own, then --version, then the help option): the option
# strings, the metavar of an option that takes a value, the help. The click group declares its options
# with these; --version's and --help's help are click's own words.
OPTIONS: tuple[tuple[tuple[str, ...], str | None, str], ...] = (
    (
        ("--database-url",),
        "URL",
        "PostgreSQL URL (env DATABASE_URL). Without it, an embedded PostgreSQL is used.",
    ),
    (
        ("--project-dir",),
        "DIR",
        "Folder holding sql/ (env RUNNER_PROJECT_DIR). Default: ./sql, else the packaged one.",
    ),
    (("-v", "--verbose"), None, "Log progress to stderr (-vv for debug)."),
    (("--version",), None, "Show the version and exit."),
    (("-h", "--help"), None, "Show this message and exit."),
)


def option_help(name: str) -> str:
    """The help of the group's option `name` (e.g. "--project-dir")."""
    return next(text for names, _, text in OPTIONS if name in names)


def help_page(prog: str, width: int, extra_commands: dict[str, str] | None = None) -> str:
    """`runner --help` at `width` columns (click's HelpFormatter width), as click's format_help writes it
    (without the final newline click's echo adds). `extra_commands`: name -> help of commands added to the
    group besides LAZY_COMMANDS."""
    page = HelpFormatter(width)
    page.write_usage(prog, USAGE)
    page.write_paragraph()
    page.write_text(HELP)
    page.write_section("Options", [(_option_names(names, metavar), text) for names, metavar, text in OPTIONS])
    helps = {name: lazy_help(target) for name, target in LAZY_COMMANDS.items()}
    helps.update(extra_commands or {})
    names = sorted(helps)
    limit = width - 6 - max(len(name) for name in names)  # click's: three times the default spacing
    page.write_section("Commands", [(name, short_help(helps[name], limit).strip()) for name in names])
    return page.getvalue()


def _option_names(names: tuple[str, ...], metavar: str | None) -> str:
    """click's first column for an option: its names, the shortest prefix first, then the metavar."""
    joined = ", ".join(sorted(names, key=lambda n: len(n) - len(n.lstrip("-/"))))
    return f"{joined} {metavar}" if metavar else joined


# -- a lazy command's help, from its source -----------------------------------------------------------
def lazy_help(target: str) -> str:
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
            docstring = ast.get_docstring(node, clean=False)  # cleaned here: ast's would import inspect
            return cleandoc(docstring) if docstring else ""
    return ""


@functools.cache
def _module_source(module: str) -> str:
    """A module's source text, without importing it (nor its package: runner.cli imports click); empty
    when it cannot be found or read."""
    import os

    import runner

    package, _, rest = module.partition(".")
    if package != "runner":
        return ""
    for base in runner.__path__:
        path = os.path.join(base, *rest.split("."))
        for candidate in (path + ".py", os.path.join(path, "__init__.py")):
            try:
                with open(candidate, encoding="utf-8") as source:
                    return source.read()
            except OSError:
                continue
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
