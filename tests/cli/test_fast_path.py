"""The click-free fast path (runner/launch.py): `runner --help`, `runner report list` and `runner job list`
print without importing click, byte for byte what the click command line prints, with its exit code.

Each command runs in a fresh interpreter twice: through the console script's entry point, and with
RUNNER_NO_FAST_PATH=1, which sends it to click.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from runner import command_index
from runner.cli import cli
from runner.launch import fast_answer
from tests.cli.test_startup import PROBE
from tests.conftest import REPO, SQL_DIR

HELP_FORMS = [[], ["--help"], ["-h"]]
LIST_FORMS = [
    [*command, *fmt]
    for command, formats in (
        (["report", "list"], ["table", "json"]),
        (["job", "list"], ["text", "json"]),
    )
    for fmt in ([], ["--format", formats[0]], ["--format", formats[1]], [f"--format={formats[1]}"])
]
NOT_FOR_CLICK = {"click", "psycopg", "psycopg_pool", "jinja2"}


def console_script() -> str:
    """The installed `runner` (pip's console script calling runner.launch:main)."""
    found = shutil.which("runner") or str(Path(sys.executable).parent / "runner")
    assert Path(found).is_file(), "runner is not installed: pip install -e ."
    return found


def run(args: list[str], *, click_path: bool, columns: int = 80, cwd: Path = REPO, **env: str):
    environment = {**os.environ, "COLUMNS": str(columns), **env}
    environment.pop("DATABASE_URL", None)
    environment.pop("RUNNER_PROJECT_DIR", None) if "RUNNER_PROJECT_DIR" not in env else None
    if click_path:
        environment["RUNNER_NO_FAST_PATH"] = "1"
    else:
        environment.pop("RUNNER_NO_FAST_PATH", None)
    return subprocess.run(
        [console_script(), *args], cwd=cwd, env=environment, capture_output=True, timeout=60, check=False
    )


def assert_same(fast: subprocess.CompletedProcess, slow: subprocess.CompletedProcess) -> None:
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, slow.stderr)


@pytest.mark.parametrize("columns", [50, 60, 80, 120, 200])
@pytest.mark.parametrize("args", HELP_FORMS, ids=["no arguments", "--help", "-h"])
def test_help_is_clicks_at_every_width(args, columns):
    fast, slow = run(args, click_path=False, columns=columns), run(args, click_path=True, columns=columns)
    assert_same(fast, slow)
    assert (fast.returncode, bool(fast.stdout), bool(fast.stderr)) == (
        (2, False, True) if not args else (0, True, False)
    )
    page = (fast.stdout or fast.stderr).decode()
    assert page.startswith("Usage: runner [OPTIONS] COMMAND [ARGS]...\n")
    wrapped = page.split("Options:", 1)[1]  # the Examples above are kept as written (`\b`)
    assert max(len(line) for line in wrapped.splitlines()) <= max(min(columns, 80) - 2, 50)
    if columns < 80:
        assert page != run(args, click_path=False, columns=80).stdout.decode()  # COLUMNS is honoured


@pytest.mark.parametrize("args", LIST_FORMS, ids=" ".join)
def test_listings_are_clicks(args):
    fast, slow = run(args, click_path=False), run(args, click_path=True)
    assert_same(fast, slow)
    assert fast.returncode == 0 and fast.stdout.strip() and not fast.stderr


@pytest.mark.parametrize(
    "args", [["--help"], ["report", "list"], ["job", "list", "--format", "json"]], ids=" ".join
)
def test_fast_forms_load_no_click_driver_or_templates(tmp_path, args):
    out = tmp_path / "modules.txt"
    env = {**os.environ, "STARTUP_PROBE_OUT": str(out)}
    env.pop("RUNNER_NO_FAST_PATH", None)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=REPO, env=env, capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    loaded = set(out.read_text().split())
    assert "runner" in loaded  # the probe did run
    assert loaded & NOT_FOR_CLICK == set()


def test_python_m_runner_takes_the_fast_path_too():
    env = {k: v for k, v in os.environ.items() if k != "RUNNER_NO_FAST_PATH"}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runner", "job", "list"],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and b"expire" in proc.stdout
    assert b" click\n" not in proc.stderr and b"runner.launch" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["report", "list", "--project-dir", str(REPO)],  # an option: click's
        ["--project-dir", str(REPO), "report", "list"],
        ["job", "--help"],
        ["job", "list", "--format", "csv"],  # not a choice: click's usage error
        ["report", "list", "--format"],
        ["report", "lists"],
        ["--version"],
    ],
    ids=" ".join,
)
def test_other_forms_go_to_click(args):
    assert fast_answer(args) is None
    fast, slow = run(args, click_path=False), run(args, click_path=True)
    assert_same(fast, slow)


def test_report_list_with_project_dir_is_the_same_listing():
    fast = run(["report", "list"], click_path=False)
    through_click = run(["--project-dir", str(REPO), "report", "list"], click_path=False, cwd=Path("/"))
    assert through_click.returncode == 0 and through_click.stdout == fast.stdout


@pytest.mark.parametrize("setting", ["folder", "a file", "missing", "empty"])
def test_report_list_honours_runner_project_dir(tmp_path, setting):
    (tmp_path / "a-file").write_text("")
    value = {
        "folder": str(SQL_DIR.parent),
        "a file": str(tmp_path / "a-file"),
        "missing": "/nowhere",
        "empty": "",
    }
    env = {"RUNNER_PROJECT_DIR": value[setting]}
    fast = run(["report", "list"], click_path=False, cwd=tmp_path, **env)
    slow = run(["report", "list"], click_path=True, cwd=tmp_path, **env)
    assert_same(fast, slow)
    assert fast.returncode == (0 if setting == "folder" else 1 if setting in ("missing", "empty") else 2)


@pytest.mark.parametrize(
    "edit",
    [
        lambda sql: (sql / "project.toml").write_text("[settings\n"),  # not TOML
        lambda sql: (sql / "reports" / "zz_broken.sql").write_text("-- report: other\nSELECT 1\n"),
        lambda sql: shutil.rmtree(sql / "reports"),  # no reports: no output
    ],
    ids=["bad project.toml", "bad report header", "no reports"],
)
def test_report_list_of_a_broken_or_empty_project_is_clicks(tmp_path, edit):
    shutil.copytree(SQL_DIR, tmp_path / "sql")
    edit(tmp_path / "sql")
    fast, slow = (
        run(["report", "list"], click_path=False, cwd=tmp_path),
        run(["report", "list"], click_path=True, cwd=tmp_path),
    )
    assert_same(fast, slow)


@pytest.mark.parametrize("width", [50, 58, 78, 100])
def test_help_page_is_what_clicks_own_formatter_makes_of_the_commands(width):
    """The page runner/command_index.py describes is click's stock rendering of the real group, every
    command imported (so their help comes from click, not from reading their source)."""
    ctx = click.Context(cli, info_name="runner", **cli.context_settings)
    stock = click.HelpFormatter(width=width)
    click.Group.format_help(cli, ctx, stock)
    assert command_index.help_page("runner", width) == stock.getvalue()
