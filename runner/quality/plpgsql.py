"""`runner lint`'s function-body check: the project applied to a scratch database on the server (created and
dropped here) and every PL/pgSQL body run through plpgsql_check, when the server has the extension; the
result says plainly when it does not."""

from __future__ import annotations

import logging
import re
import uuid
from typing import TYPE_CHECKING

from runner.errors import ProjectError, RunnerError, first_line
from runner.project import Project

if TYPE_CHECKING:
    import psycopg

from runner.quality.findings import Finding, LintResult

log = logging.getLogger(__name__)

FUNCTION_NAME = re.compile(
    r"\bFUNCTION\s+(?:[a-z_][a-z0-9_]*\.)?(?P<name>[a-z_][a-z0-9_]*)\s*\(", re.IGNORECASE
)
PLPGSQL_CHECK = "plpgsql-check"


# -- plpgsql_check -----------------------------------------------------------------------------------
def check_functions(project: Project, url: str, result: LintResult) -> None:
    """Apply the project to a scratch database of the server at `url` and check every PL/pgSQL function
    with plpgsql_check; say why not when the server cannot."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    from runner import database, migrate

    conn = database.connect(url, command="lint")
    try:
        version = conn.execute("SHOW server_version").fetchone()[0]
        available = conn.execute(
            "SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'plpgsql_check'"
        ).fetchone()
        if available is None:
            major = version.split(".")[0].split()[0]
            result.plpgsql_check = "unavailable"
            result.notes.append(
                f"plpgsql_check: not available on this server (PostgreSQL {version}): function bodies were "
                f"NOT checked (Debian: apt-get install postgresql-{major}-plpgsql-check; or point "
                "--database-url at a server that has it)"
            )
            return
        scratch = f"runner_lint_{uuid.uuid4().hex[:12]}"
        try:
            conn.execute(f'CREATE DATABASE "{scratch}" TEMPLATE template0')
        except psycopg.Error as exc:
            result.plpgsql_check = "skipped"
            result.notes.append(
                f"plpgsql_check: skipped: cannot create a scratch database on this server "
                f"({first_line(exc)}): function bodies were NOT checked"
            )
            return
        try:
            scratch_url = make_conninfo(url, dbname=scratch)
            try:
                migrate.apply(lambda: database.connect(scratch_url, command="lint"), project)
            except RunnerError as exc:
                result.plpgsql_check = "skipped"
                result.findings.append(
                    Finding(
                        "apply",
                        "sql/",
                        None,
                        "apply",
                        f"the project does not apply to an empty database: {exc}",
                    )
                )
                return
            with database.connect(scratch_url, command="lint") as scratch_conn:
                try:
                    scratch_conn.execute("CREATE EXTENSION plpgsql_check")
                except psycopg.Error as exc:
                    result.plpgsql_check = "skipped"
                    result.notes.append(
                        f"plpgsql_check: skipped: CREATE EXTENSION failed ({first_line(exc)}): "
                        "function bodies were NOT checked"
                    )
                    return
                _plpgsql_check(project, scratch_conn, result)
                result.plpgsql_check = "checked"
        finally:
            conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    finally:
        conn.close()


def _plpgsql_check(project: Project, conn: psycopg.Connection, result: LintResult) -> None:
    files = _function_files(project)
    functions = conn.execute(_sql("lint_plpgsql_functions.sql"), {"schema": project.schema}).fetchall()
    for signature, name, relid, oldtable, newtable, is_trigger in functions:
        if is_trigger and relid is None:
            result.notes.append(
                f"plpgsql_check: {signature} is a trigger function no trigger uses: not checked"
            )
            continue
        rows = conn.execute(
            "SELECT level, lineno, message, detail, hint FROM plpgsql_check_function_tb("
            "%s::regprocedure, coalesce(%s::oid, 0)::regclass, oldtable => %s, newtable => %s)",
            (signature, relid, oldtable, newtable),
        ).fetchall()
        result.functions += 1
        for level, lineno, message, detail, hint in rows:
            extra = f" ({detail})" if detail else ""
            result.findings.append(
                Finding(
                    "plpgsql_check",
                    files.get(name, f"sql/functions (function {name})"),
                    None,
                    PLPGSQL_CHECK,
                    f"{signature}, line {lineno} of its body: {message}{extra}",
                    level="error" if level == "error" else "warning",
                    help=hint,
                )
            )


def _function_files(project: Project) -> dict[str, str]:
    """Function name -> the sql/functions file that defines it (from the rendered text)."""
    found: dict[str, str] = {}
    folder = project.sql_dir / "functions"
    for path in sorted(folder.glob("*.sql")) if folder.is_dir() else []:
        try:
            text = project.render(f"functions/{path.name}")
        except ProjectError:  # reported as a Jinja finding already
            continue
        for match in FUNCTION_NAME.finditer(text):
            found.setdefault(match["name"].lower(), f"sql/functions/{path.name}")
    return found


def _sql(name: str) -> str:
    import importlib.resources

    return (importlib.resources.files("runner.quality") / "sql" / name).read_text(encoding="utf-8")
