"""Start-up (issue 17): a command imports only what it uses, and the render cache changes nothing but time.

The commands run in a fresh interpreter each (a subprocess), which reports the modules it loaded. The
timing aims themselves are the benchmark's (bench/bench_cli.py, bench/bench_apply.py), not a test's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from runner import project as project_mod
from runner import render_cache
from tests.conftest import REPO, SQL_DIR

# Runs `runner ARGS...` through the console script's entry point (runner/launch.py) and writes the top-level
# names of every module it loaded to STARTUP_PROBE_OUT (without importing anything itself: json would count
# as loaded). With --project-dir every command goes through click; tests/cli/test_fast_path.py runs the
# forms runner/launch.py answers without click.
PROBE = """
import atexit, os, sys
def report():
    with open(os.environ["STARTUP_PROBE_OUT"], "w") as out:
        out.write("\\n".join(sorted({name.split(".")[0] for name in sys.modules})))
atexit.register(report)
sys.argv = ["runner", *sys.argv[1:]]
from runner.launch import main
main()
"""

# What only the web service, the checkout API or /metrics need.
SERVICE_ONLY = {"stripe", "flask", "werkzeug", "granian", "prometheus_client"}
# What a command that touches no database (and renders no template) does not need either.
NO_DATABASE = SERVICE_ONLY | {"psycopg", "psycopg_pool", "jinja2"}


def loaded_by(tmp_path: Path, *args: str, project_dir: Path = REPO) -> set[str]:
    out = tmp_path / "modules.txt"
    env = {**os.environ, "STARTUP_PROBE_OUT": str(out), "RUNNER_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("DATABASE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "--project-dir", str(project_dir), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return set(out.read_text().split())


@pytest.mark.parametrize(
    "args", [["--help"], ["report", "list"], ["job", "list"], ["job", "--help"], ["apply", "--help"]]
)
def test_commands_without_a_database_load_neither_driver_nor_templates(tmp_path, args):
    loaded = loaded_by(tmp_path, *args)
    assert "runner" in loaded and "click" in loaded  # the probe did run the command
    assert loaded & NO_DATABASE == set()


@pytest.mark.parametrize("no_fast_path", ["", "1"], ids=["fast path", "click"])
def test_help_lists_every_command_without_importing_their_modules(tmp_path, no_fast_path):
    out = tmp_path / "modules.txt"
    probe = PROBE.replace(
        'name.split(".")[0] for name in sys.modules',
        'name for name in sys.modules if name.startswith("runner.cli.")',
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "STARTUP_PROBE_OUT": str(out), "RUNNER_NO_FAST_PATH": no_fast_path},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    from runner.cli import LAZY_COMMANDS

    listed = {line.split()[0] for line in proc.stdout.split("Commands:", 1)[1].splitlines() if line.strip()}
    assert set(LAZY_COMMANDS) <= listed  # listed, with their help read from the source
    assert out.read_text().split() == []


def test_apply_status_and_a_job_load_no_service_module_and_no_jinja_once_rendered(tmp_path, empty_db_url):
    url = ["--database-url", empty_db_url]
    shutil.copytree(SQL_DIR, tmp_path / "project" / "sql")  # a copy: an edit elsewhere must not re-render it
    first = loaded_by(tmp_path, *url, "apply", project_dir=tmp_path / "project")  # an empty cache: renders
    assert "jinja2" in first and "psycopg" in first
    assert first & SERVICE_ONLY == set()
    for args in (["apply"], ["apply", "--check"], ["status"], ["job", "expire"]):
        loaded = loaded_by(tmp_path, *url, *args, project_dir=tmp_path / "project")
        assert "psycopg" in loaded, args
        assert loaded & (SERVICE_ONLY | {"jinja2"}) == set(), args


def test_help_read_from_source_is_each_commands_own(tmp_path):
    """The list of `runner --help` (read from source) says what each command's imported help says."""
    import click

    from runner.cli import LAZY_COMMANDS, _lazy_help, cli

    ctx = click.Context(cli)
    for name in LAZY_COMMANDS:
        command = cli.get_command(ctx, name)
        real = (command.short_help or command.help or "").strip().splitlines()
        assert _lazy_help(LAZY_COMMANDS[name]).strip().splitlines()[:1] == real[:1], name


# -- the render cache ------------------------------------------------------------------------------
@pytest.fixture
def sql_copy(tmp_path: Path, monkeypatch) -> Path:
    """An editable copy of the SQL project, its render cache in the copy's .runner/cache/."""
    monkeypatch.delenv("RUNNER_CACHE_DIR", raising=False)
    shutil.copytree(SQL_DIR, tmp_path / "sql")
    return tmp_path


def rendered(project: project_mod.Project) -> list[tuple]:
    return [
        (f.name, f.kind, f.version, f.rendered, f.checksum, f.transactional, f.depends, f.finally_)
        for f in project.files()
    ]


def fresh_render(project_dir: Path) -> list[tuple]:
    project = project_mod.load(project_dir)
    return [
        (f.name, f.kind, f.version, f.rendered, f.checksum, f.transactional, f.depends, f.finally_)
        for f in project.versioned() + project.repeatables()
    ]


def test_cached_files_are_the_rendered_files(sql_copy):
    first = rendered(project_mod.load(sql_copy))
    entries = list((sql_copy / ".runner" / "cache").glob("render-*.json"))
    assert len(entries) == 1
    assert (sql_copy / ".runner" / "cache" / ".gitignore").read_text().splitlines()[-1] == "*"
    # A new process (a new Project) reads the entry: the same files, field for field, as rendering gives.
    entry = json.loads(entries[0].read_text())
    entry["files"][0]["rendered"] += "-- marker: read from the cache\n"  # same key: proves the entry is used
    entries[0].write_text(json.dumps(entry))
    cached = rendered(project_mod.load(sql_copy))
    assert cached[0][3].endswith("-- marker: read from the cache\n")
    assert [row[:3] + row[4:] for row in cached] == [row[:3] + row[4:] for row in first]
    assert first == fresh_render(sql_copy)


@pytest.mark.parametrize("edit", ["macro", "function", "table", "config", "new file"])
def test_any_change_under_sql_renders_again(sql_copy, edit):
    sql = sql_copy / "sql"
    project = project_mod.load(sql_copy)
    before = rendered(project)
    if edit == "macro":  # a file no one applies, that others include
        macros = sql / "macros" / "common.sql"
        macros.write_text(
            macros.read_text().replace(
                "SET search_path = {{ settings.schema }}, pg_temp",
                "SET search_path = pg_catalog, {{ settings.schema }}, pg_temp",
            )
        )
    elif edit == "function":
        target = sql / "functions" / "checkout_session_rules.sql"
        target.write_text(target.read_text() + "\nSELECT 42;\n")
    elif edit == "table":
        target = next((sql / "tables").glob("V001__*.sql"))
        target.write_text(target.read_text() + "\nSELECT 42;\n")
    elif edit == "config":
        config = sql / "project.toml"
        config.write_text(config.read_text().replace("expiry_hours = 24", "expiry_hours = 25", 1))
    else:
        (sql / "functions" / "zz_startup_probe.sql").write_text("SELECT 42;\n")
    for loaded in (project if edit != "config" else project_mod.load(sql_copy), project_mod.load(sql_copy)):
        after = rendered(loaded)  # the same Project (its memory) and a new one (the cache on disk)
        assert after == fresh_render(sql_copy)
        assert after != before


def test_a_broken_entry_is_rendered_again_and_replaced(sql_copy):
    expected = rendered(project_mod.load(sql_copy))
    (entry,) = (sql_copy / ".runner" / "cache").glob("render-*.json")
    for broken in (
        "{not json",
        '{"key": 1}',
        json.dumps({"key": render_cache.key(project_mod.load(sql_copy)), "files": [{"name": "x"}]}),
    ):
        entry.write_text(broken)
        assert rendered(project_mod.load(sql_copy)) == expected
        assert json.loads(entry.read_text())["files"][0]["name"] == expected[0][0]


def test_an_empty_cache_dir_setting_turns_the_cache_off(sql_copy, monkeypatch):
    monkeypatch.setenv("RUNNER_CACHE_DIR", "")
    assert rendered(project_mod.load(sql_copy)) == fresh_render(sql_copy)
    assert not (sql_copy / ".runner").exists()


def test_an_unwritable_cache_folder_is_no_error(sql_copy, monkeypatch):
    blocker = sql_copy / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(blocker / "cache"))
    assert rendered(project_mod.load(sql_copy)) == fresh_render(sql_copy)


def test_concurrent_first_renders_agree_and_leave_one_valid_entry(sql_copy):
    barrier = threading.Barrier(8)
    results, errors = [], []

    def render():
        try:
            project = project_mod.load(sql_copy)
            barrier.wait()
            results.append(rendered(project))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=render) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    expected = fresh_render(sql_copy)
    assert results == [expected] * 8
    (entry,) = (sql_copy / ".runner" / "cache").glob("render-*.json")  # no temp file left behind
    assert [f["checksum"] for f in json.loads(entry.read_text())["files"]] == [row[4] for row in expected]
    assert rendered(project_mod.load(sql_copy)) == expected


# -- apply's round trips ---------------------------------------------------------------------------
def test_apply_one_query_per_file_all_recorded_without_warnings(empty_db_url, project):
    """Each file and its history row in one query (the earlier ones without waiting for the disk): every
    file recorded once, in order, with a duration, and no warning from the server (SET LOCAL is valid)."""
    import psycopg

    from runner import migrate

    notices = []

    def connect():
        conn = psycopg.connect(empty_db_url, autocommit=True)
        conn.add_notice_handler(
            lambda diag: notices.append((diag.severity_nonlocalized, diag.message_primary))
        )
        return conn

    result = migrate.apply(connect, project)
    assert len(result.steps) == len(project.files())
    assert [n for n in notices if n[0] not in ("NOTICE", "DEBUG", "INFO", "LOG")] == []
    with psycopg.connect(empty_db_url) as conn:
        rows = conn.execute("SELECT name, duration_ms FROM runner_schema_history ORDER BY id").fetchall()
        assert [r[0] for r in rows] == [f.name for f in project.files()]
        assert all(r[1] >= 0 for r in rows)
    # A no-op is the history read alone: no lock, nothing written.
    assert migrate.apply(connect, project).steps == []
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM runner_schema_history").fetchone()[0] == len(rows)


def test_linked_folders_count_and_a_link_loop_is_no_hang(sql_copy, tmp_path):
    """A macros folder linked from elsewhere is part of the key (Jinja reads through the link); a link
    back up the tree is walked once."""
    shared = tmp_path / "shared_macros"
    shutil.move(sql_copy / "sql" / "macros", shared)
    (sql_copy / "sql" / "macros").symlink_to(shared, target_is_directory=True)
    (sql_copy / "sql" / "loop").symlink_to(sql_copy / "sql", target_is_directory=True)
    before = rendered(project_mod.load(sql_copy))
    macros = shared / "common.sql"
    macros.write_text(
        macros.read_text().replace(
            "SET search_path = {{ settings.schema }}, pg_temp",
            "SET search_path = pg_catalog, {{ settings.schema }}, pg_temp",
        )
    )
    after = rendered(project_mod.load(sql_copy))
    assert after != before
    assert after == fresh_render(sql_copy)
