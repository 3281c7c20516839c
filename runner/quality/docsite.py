"""`runner docs -o DIR`: a static documentation site from the SQL project and the live catalogue.

Pages (plain HTML, styles inline, nothing fetched: open index.html from disk or serve the folder):
index (overview), tables (columns, types, defaults, constraints, indexes, triggers, comments, privileges),
functions (the `-- depends:` graph as a picture; each function's signature, comment, who may execute it,
what it depends on and calls), reports (parameters, the command line, the SQL), tests (the data tests of
sql/tests/ and sql/project.toml with the result of running them now) and history (what `runner apply` has
applied, and what is pending). The catalogue queries are the package's sql/docs_*.sql.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import DocsError, RunnerError
from runner.quality import depgraph

if TYPE_CHECKING:
    import psycopg

    from runner.project import Project

PAGES = ("index", "tables", "functions", "reports", "tests", "history")
DEFINES = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\s+(?:\"?\w+\"?\s*\.\s*)?\"?(\w+)\"?\s*\(",
    re.IGNORECASE,
)
TABLE_DDL = re.compile(
    r"\b(CREATE|ALTER)\s+(?:UNLOGGED\s+)?(?:TABLE|VIEW|MATERIALIZED\s+VIEW)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?"
    r"(?:ONLY\s+)?(?:\"?\w+\"?\s*\.\s*)?\"?(\w+)\"?",
    re.IGNORECASE,
)
CREATE_OR_REPLACE_VIEW = re.compile(
    r"\bCREATE\s+OR\s+REPLACE\s+VIEW\s+(?:\"?\w+\"?\s*\.\s*)?\"?(\w+)\"?", re.IGNORECASE
)


@dataclass
class Site:
    """What was written, and the counts the CLI reports."""

    folder: Path
    pages: list[Path] = field(default_factory=list)
    tables: int = 0
    functions: int = 0
    reports: int = 0
    tests: int = 0
    failing_tests: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "pages": [str(p) for p in self.pages],
            "tables": self.tables,
            "functions": self.functions,
            "reports": self.reports,
            "tests": self.tests,
            "failing_tests": self.failing_tests,
        }


def _query(conn: psycopg.Connection, name: str, **params: Any) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    sql = (importlib.resources.files("runner.quality") / "sql" / f"{name}.sql").read_text(encoding="utf-8")
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(sql, params).fetchall()


def _by_table(rows: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["table_oid"], []).append(row)
    return grouped


def tables(conn: psycopg.Connection, project: Project) -> list[dict[str, Any]]:
    """Every table and view of the project's schema with its columns, constraints, indexes and triggers,
    and the versioned files that create or alter it."""
    schema = project.schema
    columns = _by_table(_query(conn, "docs_columns", schema=schema))
    constraints = _by_table(_query(conn, "docs_constraints", schema=schema))
    indexes = _by_table(_query(conn, "docs_indexes", schema=schema))
    triggers = _by_table(_query(conn, "docs_triggers", schema=schema))
    touched: dict[str, list[tuple[str, str]]] = {}
    for f in project.files():
        for match in TABLE_DDL.finditer(f.rendered):
            entry = ("created" if match[1].lower() == "create" else "altered", f.name)
            touched.setdefault(match[2], [])
            if entry not in touched[match[2]]:
                touched[match[2]].append(entry)
        for match in CREATE_OR_REPLACE_VIEW.finditer(f.rendered):
            touched.setdefault(match[1], [])
            if ("created", f.name) not in touched[match[1]]:
                touched[match[1]].append(("created", f.name))
    result = []
    for table in _query(conn, "docs_tables", schema=schema):
        oid = table["oid"]
        result.append(
            {
                **table,
                "columns": columns.get(oid, []),
                "constraints": constraints.get(oid, []),
                "indexes": indexes.get(oid, []),
                "triggers": triggers.get(oid, []),
                "files": touched.get(table["name"], []),
                "referenced_by": [],
            }
        )
    names = {t["oid"]: t["name"] for t in result}
    for t in result:
        for c in t["constraints"]:
            if c["kind"] == "foreign key" and c["references_table"]:
                for other in result:
                    if other["name"] == c["references_table"]:
                        other["referenced_by"].append(f"{names[t['oid']]} ({c['name']})")
    return result


def functions(
    conn: psycopg.Connection, project: Project
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the repeatable files, each with the functions it defines; the functions no file defines).
    A function's `calls` are the project's functions its body names; `triggers` the triggers running it."""
    rows = _query(conn, "docs_functions", schema=project.schema)
    names = sorted({r["name"] for r in rows}, key=len, reverse=True)
    trigger_rows = _query(conn, "docs_triggers", schema=project.schema)
    table_names = {t["oid"]: t["name"] for t in _query(conn, "docs_tables", schema=project.schema)}
    for row in rows:
        body = row["body"] or ""
        row["calls"] = sorted(
            {n for n in names if n != row["name"] and re.search(rf"\b{re.escape(n)}\s*\(", body)}
        )
        row["triggers"] = [
            f"{t['name']} on {table_names.get(t['table_oid'], '?')}"
            for t in trigger_rows
            if t["function"] == row["name"]
        ]
        row["anchor"] = f"fn-{row['name']}-{row['oid']}"
    for row in rows:
        row["called_by"] = sorted({r["name"] for r in rows if row["name"] in r["calls"]})
    files = project.repeatables()
    dependents: dict[str, list[str]] = {}
    for f in files:
        for d in f.depends:
            dependents.setdefault(d, []).append(f.description)
    claimed: set[int] = set()
    result = []
    for f in files:
        defined = {m.lower() for m in DEFINES.findall(f.rendered)}
        mine = [r for r in rows if r["name"].lower() in defined]
        claimed.update(r["oid"] for r in mine)
        result.append(
            {
                "name": f.description,
                "path": f.label,
                "depends": list(f.depends),
                "dependents": sorted(dependents.get(f.description, [])),
                "finally": f.finally_,
                "functions": mine,
                "transactional": f.transactional,
            }
        )
    return result, [r for r in rows if r["oid"] not in claimed]


def history(conn: psycopg.Connection, project: Project) -> tuple[list[dict[str, Any]], list[Any]]:
    """(every history row, newest first; each project file's state: applied, pending, drifted, ...)."""
    from psycopg.rows import dict_row

    from runner import migrate

    if not migrate.history_exists(conn, project):
        return [], migrate.status(conn, project)
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            f"SELECT id, kind, version, name, checksum, applied_at, duration_ms, applied_by, client, runner_version "
            f"FROM {project.history_table} ORDER BY id DESC"
        ).fetchall()
    return rows, migrate.status(conn, project)


def data_tests(conn: psycopg.Connection, project: Project, run: bool) -> dict[str, Any]:
    """The data tests, and their results when `run` (each read-only): {"tests", "results", "ran_at"}."""
    try:
        from runner.quality import datatests
    except ImportError:  # the data tests module is not there: nothing to list
        return {"tests": [], "results": {}, "ran_at": None, "error": None}
    try:
        tests = datatests.load(project)
    except RunnerError as exc:
        return {"tests": [], "results": {}, "ran_at": None, "error": str(exc)}
    results = {}
    ran_at = None
    if run and tests:
        ran_at = conn.execute("SELECT now()").fetchone()[0]
        results = {r.name: r for r in datatests.run(conn, project, tests=tests)}
    return {"tests": tests, "results": results, "ran_at": ran_at, "error": None}


def collect(conn: psycopg.Connection, project: Project, *, run_tests: bool = True) -> dict[str, Any]:
    """Everything the site shows."""
    from runner.reporting import reports

    server = conn.execute(
        "SELECT current_setting('server_version'), current_database(), current_user, now()"
    ).fetchone()
    files, loose = functions(conn, project)
    titles = {
        f["name"]: f"{f['path']}: "
        + (", ".join(sorted({fn["name"] for fn in f["functions"]})) or "no function")
        for f in files
    }
    graph = depgraph.layout(project.repeatables(), titles)
    report_list = []
    for r in reports.available(project):
        source = (project.sql_dir / r.path).read_text(encoding="utf-8")
        example = " ".join(
            ["runner report", r.name]
            + [f"-p {p.name}={p.default_text}" for p in r.params if p.default is not None][:1]
        )
        report_list.append({"report": r, "source": source, "example": example})
    history_rows, states = history(conn, project)
    return {
        "server": {"version": server[0], "database": server[1], "user": server[2]},
        "generated": server[3],
        "project": project,
        "schema": project.schema,
        "tables": tables(conn, project),
        "files": files,
        "loose_functions": loose,
        "graph_svg": depgraph.svg(graph),
        "graph_svg_linked": depgraph.svg(graph, href="functions.html#file-{name}"),  # from other pages
        "graph": graph,
        "reports": report_list,
        "tests": data_tests(conn, project, run_tests),
        "history": history_rows,
        "states": states,
    }


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("runner.quality", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["bytes"] = _bytes
    env.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M:%S %Z") if value else ""
    env.filters["cell"] = _cell
    return env


def _bytes(value: int | None) -> str:
    size = float(value or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def render(data: dict[str, Any]) -> dict[str, str]:
    """Page name -> HTML."""
    env = _environment()
    return {page: env.get_template(f"{page}.html").render(page=page, pages=PAGES, **data) for page in PAGES}


def build(
    conn: psycopg.Connection,
    project: Project,
    folder: str | Path,
    *,
    run_tests: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Site:
    """Write the site into `folder` (created; its earlier pages replaced, nothing else touched)."""
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise DocsError(f"{out} is a file, not a folder: pass another -o")
    if out.is_dir() and any(out.iterdir()) and not (out / "index.html").is_file():
        raise DocsError(
            f"{out} is not empty and holds no earlier site (no index.html): pass an empty or new folder"
        )
    say = progress or (lambda _message: None)
    say("docs: reading the catalogue" + (" and running the data tests" if run_tests else ""))
    data = collect(conn, project, run_tests=run_tests)
    pages = render(data)
    # Each page is written beside the site, then renamed over its old version: a reader (or a web server)
    # never sees half a page, and two runs at once each replace whole pages (index.html first, so a folder
    # holding any page of a site holds its index).
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    written = []
    try:
        for page in PAGES:
            (tmp / f"{page}.html").write_text(pages[page], encoding="utf-8")
        for page in PAGES:
            target = out / f"{page}.html"
            (tmp / f"{page}.html").replace(target)
            written.append(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results = data["tests"]["results"]
    return Site(
        folder=out,
        pages=written,
        tables=len(data["tables"]),
        functions=sum(len(f["functions"]) for f in data["files"]) + len(data["loose_functions"]),
        reports=len(data["reports"]),
        tests=len(data["tests"]["tests"]),
        failing_tests=sum(1 for r in results.values() if not r.passed),
    )
