"""What a fresh `runner apply` builds, learnt by rendering the project into a scratch schema inside a
transaction that is rolled back, and the catalogue readers that describe a live schema the same way."""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner import migrate
from runner.adoption.plan import Column, Constraint, Index, TableShape
from runner.adoption.rules import catalogue_sql
from runner.errors import first_line
from runner.project import Project, SqlFile

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


# The scratch schema the project is rendered into to learn its shape (never committed); one name per
# inspection (its backend's pid), so two `adopt --check` at once never wait on each other's schema.
TARGET_SCHEMA = "runner_adopt_target"
INDEX_DEF = re.compile(
    r"^CREATE (?P<unique>UNIQUE )?INDEX (?P<name>\S+) ON (?:ONLY )?(?P<table>\S+) (?P<rest>USING .*)$"
)


@dataclass
class Target:
    """What a fresh `runner apply` builds, learnt from the scratch schema."""

    # versioned files in order, with the tables each creates
    versions: list[tuple[SqlFile, list[str]]] = field(default_factory=list)
    # shape of each table right after the version that created it and its companions of the same prefix
    shapes: dict[str, TableShape] = field(default_factory=dict)
    # the final shape (every file applied): for telling the team's own columns and objects from ours
    final: dict[str, TableShape] = field(default_factory=dict)
    final_triggers: set[tuple[str, str]] = field(default_factory=set)
    views: set[str] = field(default_factory=set)
    # function name -> {(identity arguments, result)}, and the function file that defines it
    functions: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    function_files: dict[str, str] = field(default_factory=dict)


def scratch_project(project: Project, schema: str) -> Project:
    """The same project rendering into the scratch schema."""
    config = copy.deepcopy(project.config)
    config["settings"]["schema"] = schema
    return Project(sql_dir=project.sql_dir, config=config)


def fetch_rows(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    names = [c.name for c in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def read_tables(conn: psycopg.Connection, project: Project, schema: str) -> dict[str, str | None]:
    """Table name -> comment, of one schema."""
    return {
        r["table_name"]: r["comment"]
        for r in fetch_rows(conn, catalogue_sql(project, "tables"), {"schema": schema})
    }


def read_shapes(
    conn: psycopg.Connection, project: Project, schema: str, tables: list[str]
) -> dict[str, TableShape]:
    """Columns, constraints and indexes of some tables, with names printed relative to `schema`."""
    conn.execute(f"SET LOCAL search_path = {schema}, pg_catalog")
    comments = read_tables(conn, project, schema)
    shapes = {t: TableShape(name=t, comment=comments.get(t)) for t in tables if t in comments}
    params = {"schema": schema, "tables": list(shapes)}
    for r in fetch_rows(conn, catalogue_sql(project, "columns"), params):
        shapes[r["table_name"]].columns[r["column_name"]] = Column(
            name=r["column_name"],
            type=r["type"],
            not_null=r["not_null"],
            default=r["default_expr"],
            identity=r["identity"] or "",
            comment=r["comment"],
            sequence=r["sequence"],
        )
    for r in fetch_rows(conn, catalogue_sql(project, "constraints"), params):
        shapes[r["table_name"]].constraints[r["name"]] = Constraint(
            name=r["name"],
            type=r["type"],
            definition=r["definition"],
            validated=r["validated"],
            index_definition=normalise_index(r["index_definition"]) if r["index_definition"] else None,
        )
    for r in fetch_rows(conn, catalogue_sql(project, "indexes"), params):
        shapes[r["table_name"]].indexes[r["name"]] = Index(
            name=r["name"],
            definition=normalise_index(r["definition"]),
            valid=r["valid"],
        )
    for r in fetch_rows(conn, catalogue_sql(project, "triggers"), params):
        shapes[r["table_name"]].triggers[r["name"]] = r["function_name"]
    conn.execute("RESET search_path")
    return shapes


def normalise_index(definition: str) -> str:
    """An index definition without its name and the table's schema: `UNIQUE ON t USING btree (a)`."""
    match = INDEX_DEF.match(definition)
    if match is None:
        return definition
    table = match["table"].rsplit(".", 1)[-1]
    return f"{match['unique'] or ''}ON {table} {match['rest']}"


def index_sql(normalised: str, name: str, schema: str, concurrently: bool = True) -> str:
    """CREATE INDEX statement for a normalised definition (see normalise_index)."""
    unique, _, rest = normalised.partition("ON ")
    table, _, using = rest.partition(" ")
    how = "CONCURRENTLY " if concurrently else ""
    return f"CREATE {unique}INDEX {how}{name} ON {schema}.{table} {using}"


def read_functions(conn: psycopg.Connection, project: Project, schema: str) -> list[dict[str, Any]]:
    conn.execute(f"SET LOCAL search_path = {schema}, pg_catalog")
    rows = fetch_rows(conn, catalogue_sql(project, "functions"), {"schema": schema})
    conn.execute("RESET search_path")
    return rows


# -- the target ------------------------------------------------------------------------------------------
def build_target(conn: psycopg.Connection, project: Project, live_tables: set[str]) -> Target:
    """Apply every file of the project into a scratch schema (inside the caller's transaction, which must be
    rolled back) and read back what it built."""
    import psycopg

    schema = f"{TARGET_SCHEMA}_{conn.info.backend_pid}"
    scratch = scratch_project(project, schema)
    target = Target()
    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    conn.execute(f"CREATE SCHEMA {schema}")
    # The files of the prefix a live database already holds tables of: their tables' shape is read right
    # after the last of them, before later versions add to those tables what they apply themselves.
    overlap_end = max((i for i, f in enumerate(project.versioned()) if _creates(f, live_tables)), default=-1)
    tables: set[str] = set()  # the scratch schema is new: empty
    for i, f in enumerate(scratch.versioned()):
        _execute_scratch(conn, f)
        before, tables = tables, set(read_tables(conn, project, schema))
        target.versions.append((f, sorted(tables - before)))
        if i == overlap_end:
            adopted = [t for _, made in target.versions for t in made if t in live_tables]
            target.shapes = read_shapes(conn, project, schema, adopted)
    functions = read_functions(conn, project, schema)
    for f in scratch.repeatables():
        if f.finally_:  # privileges: grants to roles, nothing of the shape
            continue
        try:
            with conn.transaction():
                _execute_scratch(conn, f)
        except psycopg.Error as exc:  # rolled back to the savepoint: `functions` still holds
            log.warning(
                "%s could not be rendered into the scratch schema (%s); its functions are not compared",
                f.label,
                first_line(exc),
            )
            continue
        before = {(r["name"], r["arguments"]) for r in functions}
        functions = read_functions(conn, project, schema)
        for r in functions:
            if (r["name"], r["arguments"]) not in before:
                target.function_files.setdefault(r["name"], f.name)
    for r in functions:
        target.functions.setdefault(r["name"], set()).add((r["arguments"], r["result"]))
    all_tables = list(read_tables(conn, project, schema))
    target.final = read_shapes(conn, project, schema, all_tables)
    target.final_triggers = {(t, name) for t, s in target.final.items() for name in s.triggers}
    target.views = {
        r[0] for r in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = %s", (schema,))
    }
    return target


def _creates(f: SqlFile, tables: set[str]) -> bool:
    """Whether a versioned file (rendered for the live schema) creates one of `tables`."""
    created = re.findall(
        r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:\w+\.)?(\w+)", f.rendered, re.IGNORECASE
    )
    return any(t in tables for t in created)


def _execute_scratch(conn: psycopg.Connection, f: SqlFile) -> None:
    if f.transactional:
        conn.execute(f.rendered)
        return
    for statement in migrate.split_statements(f.rendered):
        conn.execute(re.sub(r"\bCONCURRENTLY\b", "", statement, flags=re.IGNORECASE))
