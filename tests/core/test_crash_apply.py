"""`runner apply` killed with SIGKILL at random points: the next apply completes and status is clean."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from runner import migrate
from tests.conftest import REPO

KILL_POINTS = int(os.environ.get("CRASH_KILL_POINTS", "20"))


def apply_process(url: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "--database-url", url, "--project-dir", str(REPO), "apply"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def sql_seconds(make_database, project) -> float:
    """How long the SQL of a whole apply takes here (in-process, no start-up), to spread kill points over."""
    url = make_database()
    start = time.monotonic()
    migrate.apply(lambda: psycopg.connect(url, autocommit=True), project)
    return time.monotonic() - start


def wait_until_connected(url: str, process: subprocess.Popen, timeout: float = 30.0) -> bool:
    """True once the apply process has a session on the database (False if it ended first)."""
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline and process.poll() is None:
            if conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name "
                "LIKE 'runner apply%%'",
                (dbname,),
            ).fetchone()[0]:
                return True
            time.sleep(0.005)
    return False


def history_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        if conn.execute("SELECT to_regclass('runner_schema_history')").fetchone()[0] is None:
            return 0
        return conn.execute("SELECT count(*) FROM runner_schema_history").fetchone()[0]


def test_sigkill_at_random_points_then_apply_completes(make_database, project, sql_seconds):
    rng = random.Random(20261127)
    files = len(project.files())
    outcomes = {"killed": 0, "killed mid-apply": 0, "finished first": 0}
    for point in range(KILL_POINTS):
        url = make_database()
        process = apply_process(url)
        # Wait until it has connected (start-up time varies a lot on a busy machine), then kill it at a
        # random moment of the SQL work.
        connected = wait_until_connected(url, process)
        time.sleep(rng.uniform(0, sql_seconds) if connected else 0)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            outcomes["killed"] += 1
        else:
            outcomes["finished first"] += 1
        process.wait(timeout=60)
        time.sleep(0.05)  # let the server notice the dead client
        if 0 < history_rows(url) < files:
            outcomes["killed mid-apply"] += 1

        # The killed client's backend goes away with its socket; the next apply must get the lock,
        # find a consistent history and finish the job.
        result = migrate.apply(
            lambda url=url: psycopg.connect(url, autocommit=True), project, lock_timeout=30
        )
        with psycopg.connect(url, autocommit=True) as conn:
            states = {s.name: s.state for s in migrate.status(conn, project)}
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN "
                "('payment_checkout_sessions', 'users', 'subscription_plans', 'webhook_events', 'error_logs')"
            ).fetchone()[0]
        assert set(states.values()) == {"applied"}, (point, result, states)
        assert tables == 5
    print(f"crash points: {outcomes}")
    assert outcomes["killed"] >= KILL_POINTS // 2, outcomes
    assert outcomes["killed mid-apply"] >= KILL_POINTS // 4, outcomes
