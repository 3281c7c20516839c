"""No silent embedded database where no person is watching (issue 14 point 8): without DATABASE_URL, CI or a
stdin that is not a terminal (cron, a pipeline) is one error line naming DATABASE_URL and RUNNER_EMBEDDED=1;
opted in, `runner serve` and the jobs use login roles of their group roles, never the superuser."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

import psycopg
import pytest
from click.testing import CliRunner

from runner import embedded
from runner.cli import cli
from runner.errors import ConfigError
from tests.conftest import REPO, free_port
from tests.core.test_embedded import runner_cmd
from tests.payments_support import JWT_SECRET, SERVICE_TOKEN, WEBHOOK_SECRET, first_health_answer

REFUSAL = (
    "Error: DATABASE_URL is not set and {why}: set DATABASE_URL (exported: `set -a` before sourcing an "
    "env file), or RUNNER_EMBEDDED=1 to use the embedded PostgreSQL\n"
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "env, stdin, why",
    [
        ({"CI": "true"}, Terminal(), "CI is set"),
        ({}, io.StringIO(), "stdin is not a terminal"),
        ({"RUNNER_EMBEDDED": "0"}, Terminal(), "RUNNER_EMBEDDED=0"),
    ],
)
def test_unattended_refusal_names_why(env, stdin, why):
    assert embedded.unattended_refusal(env, stdin) == REFUSAL.format(why=why)[len("Error: ") : -1]


@pytest.mark.parametrize(
    "env, stdin",
    [
        ({}, Terminal()),
        ({"CI": "false"}, Terminal()),
        ({"RUNNER_EMBEDDED": "1", "CI": "true"}, io.StringIO()),
        ({"RUNNER_EMBEDDED": "yes"}, io.StringIO()),
    ],
)
def test_a_terminal_or_the_opt_in_starts_the_embedded_server(env, stdin):
    assert embedded.unattended_refusal(env, stdin) is None


def test_a_bad_runner_embedded_is_a_config_error():
    with pytest.raises(ConfigError, match="RUNNER_EMBEDDED must be 1 or 0, got 'maybe'"):
        embedded.unattended_refusal({"RUNNER_EMBEDDED": "maybe"}, Terminal())


@pytest.mark.parametrize(
    "args",
    [
        ["apply"],
        ["status"],
        ["job", "expire"],
        ["report", "sessions_by_status"],
        ["webhook", "secret", "list"],
        ["db", "url"],
    ],
)
def test_every_command_without_database_url_under_ci_is_one_line_and_exit_1(tmp_path, args):
    """In-process, as CI runs it (CI=true, no terminal): nothing starts, no data folder appears."""
    data_dir = tmp_path / "pgdata"
    result = CliRunner().invoke(
        cli,
        args,
        env={"DATABASE_URL": None, "CI": "true", "RUNNER_EMBEDDED": None, "RUNNER_DATA_DIR": str(data_dir)},
    )
    assert result.exit_code == 1, result.output
    assert result.output == REFUSAL.format(why="CI is set")
    assert not data_dir.exists()


def test_cron_without_export_fails_loudly(tmp_path):
    """The README's old cron recipe: an env file sourced without `set -a` leaves DATABASE_URL unexported, so
    the job saw none. Now it exits 1 with the line (cron mails it), instead of 0 on an empty database."""
    env_file = tmp_path / "runner.env"
    env_file.write_text("DATABASE_URL=postgresql://app@db.invalid/app\n")
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CI", "RUNNER_EMBEDDED")}
    environment["RUNNER_DATA_DIR"] = str(tmp_path / "pgdata")
    old = subprocess.run(
        ["sh", "-c", f". {env_file} && {sys.executable} -m runner job expire"],
        cwd=REPO,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert old.returncode == 1 and old.stderr == REFUSAL.format(why="stdin is not a terminal")
    fixed = subprocess.run(
        ["sh", "-c", f"set -a && . {env_file} && set +a && {sys.executable} -m runner db url"],
        cwd=REPO,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert fixed.returncode == 0 and fixed.stdout.strip() == "postgresql://app@db.invalid/app"
    assert not (tmp_path / "pgdata").exists()


def test_embedded_serve_and_jobs_run_as_login_roles_of_their_group_roles(tmp_path):
    data_dir = tmp_path / "pgdata"
    env = {
        "RUNNER_DATA_DIR": str(data_dir),
        "RUNNER_EMBEDDED": "1",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "JWT_SECRET": JWT_SECRET,
        "SERVICE_TOKEN": SERVICE_TOKEN,
        "STRIPE_SECRET_KEY": "sk_test_embedded",
    }
    serve = None
    try:
        assert runner_cmd("apply", cwd=REPO, env=env).returncode == 0
        admin_url = runner_cmd("db", "url", cwd=REPO, env=env).stdout.strip()
        job = runner_cmd("job", "expire", cwd=REPO, env=env)
        assert job.returncode == 0, job.stderr

        port = free_port()
        environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RUNNER_PROJECT_DIR")}
        serve = subprocess.Popen(
            [sys.executable, "-m", "runner", "serve", "--port", str(port), "--workers", "2"],
            cwd=REPO,
            env={**environment, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        health = first_health_answer(f"http://127.0.0.1:{port}", serve)
        assert health is not None and health.status_code == 200
        with psycopg.connect(admin_url, autocommit=True) as conn:
            users = {
                r[0]
                for r in conn.execute(
                    "SELECT usename FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend'"
                )
            }
            assert users == {"runner_serve"}, users
            assert conn.execute(
                "SELECT r.rolsuper, pg_has_role(r.oid, 'checkout_app', 'MEMBER'), "
                "pg_has_role(r.oid, 'checkout_jobs', 'MEMBER') FROM pg_roles r WHERE rolname = 'runner_serve'"
            ).fetchone() == (False, True, False)
            assert conn.execute(
                "SELECT r.rolsuper, pg_has_role(r.oid, 'checkout_jobs', 'MEMBER'), "
                "pg_has_role(r.oid, 'checkout_app', 'MEMBER') FROM pg_roles r WHERE rolname = 'runner_jobs'"
            ).fetchone() == (False, True, False)
            # The job's run was recorded through the jobs role's functions; the secret came from the env.
            assert conn.execute("SELECT job, outcome FROM job_runs").fetchall() == [("expire", "succeeded")]
            assert conn.execute("SELECT count(*) FROM webhook_secrets").fetchone()[0] == 1
    finally:
        if serve is not None:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                serve.kill()
        runner_cmd("db", "stop", cwd=REPO, env=env)


def test_login_roles_made_by_several_runners_at_once(pg_admin_url, db_url, project):
    """`runner serve` and a job starting together in embedded mode both make the same login role: each gets
    it, none fails (CREATE ROLE and GRANT racing)."""
    import threading
    import uuid

    from psycopg.conninfo import make_conninfo

    login = f"t_login_{uuid.uuid4().hex[:10]}"
    admin_db = make_conninfo(db_url)
    urls, failures = [], []

    def make() -> None:
        try:
            urls.append(embedded.login_role_url(admin_db, login, project.settings["jobs_role"]))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=make) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert failures == [] and len(set(urls)) == 1 and len(urls) == 8
        with psycopg.connect(urls[0]) as conn:
            assert conn.execute("SELECT current_user, pg_has_role('checkout_jobs', 'MEMBER')").fetchone() == (
                login,
                True,
            )
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (login,)
            )
            admin.execute(f"DROP ROLE IF EXISTS {login}")
