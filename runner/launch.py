"""The `runner` command's entry point: a few commands that need no database print without click.

Importing click costs more than three times Python's own start-up (`click.core` imports inspect, ast and
dis), so `runner --help`, `runner report list` and `runner job list` are printed here, by the same
functions their click commands call (runner/command_index.py's help page, runner/reporting/reports.py's
and runner/jobs/catalogue.py's listings): byte for byte the same output and exit code, as
tests/cli/test_fast_path.py checks. Any other command line, any global option (`--project-dir`,
`-v`, ...), shell completion, and anything unexpected on the way (a bad project.toml, output that is not
plain text) goes to the click command line, which does it (or says what is wrong) as before.
RUNNER_NO_FAST_PATH=1 sends everything to click.
"""

from __future__ import annotations

import os
import sys

PROG = "runner"
# Each fast command: its arguments after `runner`, and the values its --format accepts (the first is the
# default), as its click command declares them.
FAST_FORMATS = {("report", "list"): ("table", "json"), ("job", "list"): ("text", "json")}


def main() -> None:
    """Run `runner` with sys.argv: a fast form here, anything else through click."""
    answer = None
    if not os.environ.get("RUNNER_NO_FAST_PATH") and f"_{PROG.upper()}_COMPLETE" not in os.environ:
        try:
            answer = fast_answer(sys.argv[1:])
        except Exception:  # noqa: BLE001 - click runs the command and reports the problem its own way
            answer = None
    if answer is None:
        from runner.cli import main as click_main

        click_main()
        return
    text, to_stderr, code = answer
    stream = sys.stderr if to_stderr else sys.stdout
    try:
        if text:
            stream.write(text)
        stream.flush()
    except BrokenPipeError:  # as click: `runner job list | head -1` ends quietly, exit code 1
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        sys.exit(1)
    sys.exit(code)


def fast_answer(args: list[str]) -> tuple[str, bool, int] | None:
    """What `runner ARGS` writes (the text, whether to stderr, the exit code) when it is a fast form and
    needs no click to answer; None for click to run it."""
    if args in ([], ["--help"], ["-h"]):
        from runner.command_index import help_page
        from runner.help_format import terminal_width

        page = help_page(PROG, terminal_width()).rstrip("\n")
        # With no arguments click shows the help as a usage error: on stderr, exit code 2.
        return _plain(page + "\n", to_stderr=not args, code=2 if not args else 0)
    command, fmt = tuple(args[:2]), _format(args[2:], FAST_FORMATS.get(tuple(args[:2])))
    if fmt is None:
        return None
    if command == ("job", "list"):
        from runner.jobs import catalogue

        return _plain(catalogue.listing(fmt) + "\n")
    project_dir = os.environ.get("RUNNER_PROJECT_DIR") or None  # click's --project-dir envvar: empty is unset
    if project_dir is not None and not (os.path.isdir(project_dir) and os.access(project_dir, os.R_OK)):
        return None  # click's check of the option says what is wrong
    from runner.project_config import locate, read_config
    from runner.reporting import reports

    sql_dir = locate(project_dir)
    read_config(sql_dir)  # checked as `runner report list` checks it: any error is click's to report
    text = reports.listing(reports.in_folder(sql_dir), fmt)
    return _plain(text + "\n" if text else "")


def _format(rest: list[str], choices: tuple[str, ...] | None) -> str | None:
    """The --format of a fast command's remaining arguments (none, `--format X` or `--format=X` with X one
    of choices), or None when they are anything else."""
    if choices is None:
        return None
    if not rest:
        return choices[0]
    if len(rest) == 2 and rest[0] == "--format":
        value = rest[1]
    elif len(rest) == 1 and rest[0].startswith("--format="):
        value = rest[0].partition("=")[2]
    else:
        return None
    return value if value in choices else None


def _plain(text: str, to_stderr: bool = False, code: int = 0) -> tuple[str, bool, int] | None:
    """The answer, unless click would change the text on its way out: it strips ANSI styles when not
    writing to a terminal and re-encodes for a stream that cannot take the text; those go to click."""
    if "\x1b" in text:
        return None
    stream = sys.stderr if to_stderr else sys.stdout
    if stream is None:
        return None
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    if not text.isascii() and encoding != "utf8":
        return None
    return text, to_stderr, code
