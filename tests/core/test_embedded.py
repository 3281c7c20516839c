"""The fresh-machine path: no DATABASE_URL, the runner brings its own PostgreSQL; and the packaged
sql/ tree of a non-editable install, used from any folder."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.conftest import REPO


def runner_cmd(*args: str, cwd: Path, env: dict[str, str], pythonpath: str | None = None):
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RUNNER_PROJECT_DIR")}
    environment.update(env)
    if pythonpath:
        environment["PYTHONPATH"] = pythonpath
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_apply_without_database_url_uses_the_embedded_server(tmp_path):
    data_dir = tmp_path / "pgdata"
    # Opted in: without a terminal (as here) a missing DATABASE_URL is otherwise an error (test_unattended.py).
    env = {"RUNNER_DATA_DIR": str(data_dir), "RUNNER_EMBEDDED": "1"}
    try:
        first = runner_cmd("apply", cwd=REPO, env=env)
        assert first.returncode == 0, first.stderr
        assert "embedded PostgreSQL 18" in first.stderr and str(data_dir) in first.stderr
        assert "(started;" in first.stderr
        assert first.stdout.startswith("Applied ")

        url = runner_cmd("db", "url", cwd=REPO, env=env)
        assert url.returncode == 0 and "(running;" in url.stderr
        with psycopg.connect(url.stdout.strip()) as conn:
            assert conn.execute("SELECT count(*) FROM subscription_plans").fetchone()[0] >= 3

        again = runner_cmd("apply", cwd=REPO, env=env)
        assert again.returncode == 0 and again.stdout.startswith("Nothing to apply")
    finally:
        stop = runner_cmd("db", "stop", cwd=REPO, env=env)
    assert stop.returncode == 0 and stop.stdout.startswith("Stopped the embedded PostgreSQL")
    assert runner_cmd("db", "stop", cwd=REPO, env=env).stdout.startswith("No embedded PostgreSQL running")


def test_non_editable_install_finds_the_packaged_project(tmp_path, empty_db_url):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheel_dir), str(REPO)]
    if importlib.util.find_spec("hatchling") is not None:
        build.insert(4, "--no-build-isolation")
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    wheel = next(wheel_dir.glob("*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (target / "runner" / "sql" / "tables" / "V003__payment_checkout_sessions.sql").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [sys.executable, "-c", "import runner; print(runner.__file__)"],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert where.stdout.strip() == str(target / "runner" / "__init__.py")
    result = runner_cmd(
        "--database-url", empty_db_url, "apply", cwd=elsewhere, env={}, pythonpath=str(target)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Applied ")
    verify = runner_cmd(
        "--database-url", empty_db_url, "verify", cwd=elsewhere, env={}, pythonpath=str(target)
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.mark.parametrize("args", [["--help"], ["apply", "--help"]])
def test_python_dash_m_runner(args):
    result = runner_cmd(*args, cwd=REPO, env={})
    assert result.returncode == 0 and "Examples:" in result.stdout
