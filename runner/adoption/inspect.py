"""Read-only inspection of a database before adoption: what `runner apply` would have built (rendered into a
scratch schema inside a transaction that is rolled back), what the live schema has, and the rows that
break the project's rules. The result is a Plan (runner/adoption/plan.py); nothing is left behind."""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner import migrate
from runner.adoption.plan import Column, Constraint, FunctionDrop, Index, Plan, RuleCount, Step, TableShape
from runner.adoption.rules import RULES, catalogue_sql
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
NOT_NULL_SUFFIX = "_adopt_not_null"
ADOPTION_LOG = "runner_adoption_log"
NEW_INDEX_SUFFIX = "_adopt"


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


def _rows(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    names = [c.name for c in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def read_tables(conn: psycopg.Connection, project: Project, schema: str) -> dict[str, str | None]:
    """Table name -> comment, of one schema."""
    return {
        r["table_name"]: r["comment"]
        for r in _rows(conn, catalogue_sql(project, "tables"), {"schema": schema})
    }


def read_shapes(
    conn: psycopg.Connection, project: Project, schema: str, tables: list[str]
) -> dict[str, TableShape]:
    """Columns, constraints and indexes of some tables, with names printed relative to `schema`."""
    conn.execute(f"SET LOCAL search_path = {schema}, pg_catalog")
    comments = read_tables(conn, project, schema)
    shapes = {t: TableShape(name=t, comment=comments.get(t)) for t in tables if t in comments}
    params = {"schema": schema, "tables": list(shapes)}
    for r in _rows(conn, catalogue_sql(project, "columns"), params):
        shapes[r["table_name"]].columns[r["column_name"]] = Column(
            name=r["column_name"],
            type=r["type"],
            not_null=r["not_null"],
            default=r["default_expr"],
            identity=r["identity"] or "",
            comment=r["comment"],
            sequence=r["sequence"],
        )
    for r in _rows(conn, catalogue_sql(project, "constraints"), params):
        shapes[r["table_name"]].constraints[r["name"]] = Constraint(
            name=r["name"],
            type=r["type"],
            definition=r["definition"],
            validated=r["validated"],
            index_definition=normalise_index(r["index_definition"]) if r["index_definition"] else None,
        )
    for r in _rows(conn, catalogue_sql(project, "indexes"), params):
        shapes[r["table_name"]].indexes[r["name"]] = Index(
            name=r["name"],
            definition=normalise_index(r["definition"]),
            valid=r["valid"],
        )
    for r in _rows(conn, catalogue_sql(project, "triggers"), params):
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
    rows = _rows(conn, catalogue_sql(project, "functions"), {"schema": schema})
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
    for i, f in enumerate(scratch.versioned()):
        before = set(read_tables(conn, project, schema))
        _execute_scratch(conn, f)
        created = sorted(set(read_tables(conn, project, schema)) - before)
        target.versions.append((f, created))
        if i == overlap_end:
            adopted = [t for _, made in target.versions for t in made if t in live_tables]
            target.shapes = read_shapes(conn, project, schema, adopted)
    for f in scratch.repeatables():
        if f.finally_:  # privileges: grants to roles, nothing of the shape
            continue
        before = {(r["name"], r["arguments"]) for r in read_functions(conn, project, schema)}
        try:
            with conn.transaction():
                _execute_scratch(conn, f)
        except psycopg.Error as exc:
            log.warning(
                "%s could not be rendered into the scratch schema (%s); its functions are not compared",
                f.label,
                str(exc).strip().splitlines()[0],
            )
            continue
        for r in read_functions(conn, project, schema):
            if (r["name"], r["arguments"]) not in before:
                target.function_files.setdefault(r["name"], f.name)
    for r in read_functions(conn, project, schema):
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


# -- the plan ----------------------------------------------------------------------------------------------
def inspect(conn: psycopg.Connection, project: Project) -> Plan:
    """The adoption plan for the database behind `conn` (autocommit). Changes nothing: everything it
    builds to look (the scratch schema, tables the rules need) is rolled back."""
    plan = Plan(schema=project.schema)
    with conn.transaction(force_rollback=True):
        # Catalogue reads and scratch objects only; never wait long for a lock the app holds.
        conn.execute("SET LOCAL lock_timeout = '5s'")
        # The audit table is created (IF NOT EXISTS, unrecorded) at the start of every adoption: it is not
        # one of the reference's tables, and its versioned file is left to the normal apply.
        live_tables = set(read_tables(conn, project, project.schema)) - {ADOPTION_LOG}
        done = migrate.applied(conn, project) if migrate.history_exists(conn, project) else {}
        versioned = project.versioned()
        if all(f.name in done for f in versioned):
            plan.history = "complete"
        # Built even when every table file is recorded: an adoption killed while it applied the function
        # files still has functions of the reference's signatures to replace.
        target = build_target(conn, project, live_tables)
        _function_drops(conn, plan, project, target)
        plan.target_final = target.final
        plan.steps += stale_defaults(conn, project, target.final)
        if plan.history != "complete":
            _plan_versions(plan, project, target, live_tables, done)
            live = read_shapes(conn, project, project.schema, sorted(live_tables))
            for table in plan.adopted_tables:
                _diff_table(plan, live[table], target.shapes[table], project.schema)
            _team_objects(conn, plan, project, target, live)
            # The rules judge data against tables a fresh database has (the plan catalogue): create the
            # absent ones here, in this rolled-back transaction, as adoption will.
            for name in plan.create_versions:
                f = next(v for v in versioned if v.name == name)
                with conn.transaction():
                    conn.execute(f.rendered)
            if plan.create_versions or plan.adopt_versions:
                seed_plans(conn, project)
        _count_rules(conn, plan, project)
    plan.pending_files = _pending_files(conn, project, plan)
    return plan


def seed_plans(conn: psycopg.Connection, project: Project) -> None:
    """The plans of sql/project.toml into the catalogue (absent ones only), before the rules judge codes."""
    if (
        project.config.get("plans")
        and conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"{project.schema}.subscription_plans",)
        ).fetchone()[0]
    ):
        conn.execute(project.render("adopt/seed_plans.sql"))


def _plan_versions(plan: Plan, project: Project, target: Target, live_tables: set[str], done: dict) -> None:
    overlap = [f for f, created in target.versions if any(t in live_tables for t in created)]
    last = max((f.version or 0 for f in overlap), default=0)
    for f, created in target.versions:
        if (f.version or 0) > last:
            break
        if f.name in done:
            continue
        present = [t for t in created if t in live_tables]
        if present and len(present) < len(created):
            missing = ", ".join(t for t in created if t not in live_tables)
            plan.blockers.append(
                f"sql/{f.name} creates {', '.join(created)}; the database has {', '.join(present)} but not "
                f"{missing}: create the missing tables by hand as the file does, then run adopt again"
            )
        elif present:
            plan.adopt_versions.append(f.name)
            plan.adopted_tables.extend(present)
        else:
            plan.create_versions.append(f.name)


def _diff_table(plan: Plan, live: TableShape, want: TableShape, schema: str) -> None:
    """The steps that bring one live table to the shape a fresh apply gives it, keeping everything else."""
    t = f"{schema}.{live.name}"
    state_before = len(plan.steps)
    for col in want.columns.values():
        have = live.columns.get(col.name)
        if have is None:
            if col.identity:
                plan.blockers.append(
                    f"{live.name}.{col.name} is missing and is an identity column: adding "
                    "one rewrites the table; add it by hand"
                )
                continue
            default = f" DEFAULT {col.default}" if col.default else ""
            not_null = " NOT NULL" if col.not_null and col.default else ""
            plan.steps.append(
                Step(
                    2,
                    live.name,
                    f"add column {col.name} {col.type}{default}{not_null}",
                    [f"ALTER TABLE {t} ADD COLUMN {col.name} {col.type}{default}{not_null}"],
                )
            )
            if col.not_null and not col.default:
                _not_null(plan, live, col.name, t)
            if col.comment:
                plan.steps.append(
                    Step(
                        2,
                        live.name,
                        f"comment on column {col.name}",
                        [f"COMMENT ON COLUMN {t}.{col.name} IS {_literal(col.comment)}"],
                    )
                )
            continue
        if have.type != col.type:
            plan.blockers.append(
                f"{live.name}.{col.name} is {have.type}, the project has {col.type}: changing a column's "
                "type rewrites the table (and fails under views using it); change it by hand, then adopt"
            )
            continue
        if col.identity and not have.identity:
            sequence = have.sequence if have.default and "nextval(" in have.default else None
            plan.steps.append(
                Step(
                    2,
                    live.name,
                    f"make {col.name} an identity column (GENERATED "
                    f"{'ALWAYS' if col.identity == 'a' else 'BY DEFAULT'}), numbering on",
                    [],
                    kind="identity",
                    args={"column": col.name, "sequence": sequence, "identity": col.identity},
                )
            )
        # A default the project does not have is dropped at the very end (stale_defaults), once the
        # project's triggers that fill the column are in place: until then the app may rely on it.
        elif col.default and have.default != col.default and not col.identity:
            plan.steps.append(
                Step(
                    2,
                    live.name,
                    f"default of {col.name}: {have.default} -> {col.default}",
                    [f"ALTER TABLE {t} ALTER COLUMN {col.name} SET DEFAULT {col.default}"],
                )
            )
        if col.not_null and not have.not_null:
            _not_null(plan, live, col.name, t)
        elif have.not_null and not col.not_null and not have.identity:
            plan.steps.append(
                Step(
                    2,
                    live.name,
                    f"{col.name} may be NULL",
                    [f"ALTER TABLE {t} ALTER COLUMN {col.name} DROP NOT NULL"],
                )
            )
        if col.comment and col.comment != have.comment:
            plan.steps.append(
                Step(
                    2,
                    live.name,
                    f"comment on column {col.name}",
                    [f"COMMENT ON COLUMN {t}.{col.name} IS {_literal(col.comment)}"],
                )
            )
    if want.comment and want.comment != live.comment:
        plan.steps.append(
            Step(2, live.name, "comment on table", [f"COMMENT ON TABLE {t} IS {_literal(want.comment)}"])
        )

    for con in want.constraints.values():
        have_con = live.constraints.get(con.name)
        if have_con is not None:
            if have_con.definition == con.definition and have_con.type == con.type:
                if not have_con.validated:
                    plan.steps.append(
                        Step(
                            6,
                            live.name,
                            f"validate {con.name}",
                            [f"ALTER TABLE {t} VALIDATE CONSTRAINT {con.name}"],
                            kind="concurrent",
                        )
                    )
                continue
            if con.type in ("c", "f"):
                plan.steps.append(
                    Step(
                        4,
                        live.name,
                        f"replace constraint {con.name}: {con.definition}",
                        [
                            f"ALTER TABLE {t} DROP CONSTRAINT {con.name}",
                            f"ALTER TABLE {t} ADD CONSTRAINT {con.name} {con.definition} NOT VALID",
                        ],
                    )
                )
                plan.steps.append(
                    Step(
                        6,
                        live.name,
                        f"validate {con.name}",
                        [f"ALTER TABLE {t} VALIDATE CONSTRAINT {con.name}"],
                        kind="concurrent",
                    )
                )
            else:
                plan.blockers.append(
                    f"constraint {live.name}.{con.name} is `{have_con.definition}`, the project "
                    f"has `{con.definition}`: replace it by hand"
                )
            continue
        twin = next(
            (
                k
                for k in live.constraints.values()
                if k.name not in want.constraints and k.type == con.type and k.definition == con.definition
            ),
            None,
        )
        if twin is not None:
            plan.steps.append(
                Step(
                    2,
                    live.name,
                    f"rename constraint {twin.name} to {con.name}",
                    [f"ALTER TABLE {t} RENAME CONSTRAINT {twin.name} TO {con.name}"],
                )
            )
            continue
        if con.type in ("c", "f"):
            plan.steps.append(
                Step(
                    4,
                    live.name,
                    f"add constraint {con.name} {con.definition} NOT VALID",
                    [f"ALTER TABLE {t} ADD CONSTRAINT {con.name} {con.definition} NOT VALID"],
                )
            )
            plan.steps.append(
                Step(
                    6,
                    live.name,
                    f"validate {con.name}",
                    [f"ALTER TABLE {t} VALIDATE CONSTRAINT {con.name}"],
                    kind="concurrent",
                )
            )
        elif con.type in ("u", "p") and con.index_definition:
            if con.type == "p" and any(k.type == "p" for k in live.constraints.values()):
                plan.blockers.append(
                    f"{live.name} has another primary key than the project's {con.definition}"
                )
                continue
            keyword = "PRIMARY KEY" if con.type == "p" else "UNIQUE"
            _index_steps(plan, live, con.name, con.index_definition, t, schema)
            plan.steps.append(
                Step(
                    7,
                    live.name,
                    f"constraint {con.name} {keyword} on its index",
                    [f"ALTER TABLE {t} ADD CONSTRAINT {con.name} {keyword} USING INDEX {con.name}"],
                )
            )
        else:
            plan.blockers.append(
                f"constraint {live.name}.{con.name} ({con.definition}) cannot be added in place"
            )

    for ix in want.indexes.values():
        have_ix = live.indexes.get(ix.name)
        if have_ix is not None and have_ix.valid and have_ix.definition == ix.definition:
            continue
        if have_ix is None:
            twin_ix = next(
                (
                    i
                    for i in live.indexes.values()
                    if i.name not in want.indexes
                    and i.valid
                    and i.definition == ix.definition
                    and not i.name.endswith(NEW_INDEX_SUFFIX)
                ),
                None,
            )
            if twin_ix is not None:
                plan.steps.append(
                    Step(
                        2,
                        live.name,
                        f"rename index {twin_ix.name} to {ix.name}",
                        [f"ALTER INDEX {schema}.{twin_ix.name} RENAME TO {ix.name}"],
                    )
                )
                continue
        _index_steps(plan, live, ix.name, ix.definition, t, schema)
    if len(plan.steps) == state_before:
        plan.matching.append(live.name)
    else:
        plan.differing.append(live.name)


def _index_steps(plan: Plan, live: TableShape, name: str, definition: str, t: str, schema: str) -> None:
    have = live.indexes.get(name)
    if have is None:
        plan.steps.append(
            Step(
                7,
                live.name,
                f"build index {name}: {definition}",
                [index_sql(definition, name, schema)],
                kind="index",
                args={"drop_first": False},
            )
        )
        return
    if not have.valid:  # an interrupted CREATE INDEX CONCURRENTLY: drop and build again
        plan.steps.append(
            Step(
                7,
                live.name,
                f"rebuild invalid index {name}: {definition}",
                [index_sql(definition, name, schema)],
                kind="index",
                args={"drop_first": True, "name": name},
            )
        )
        return
    new = name[: 63 - len(NEW_INDEX_SUFFIX)] + NEW_INDEX_SUFFIX
    staged = live.indexes.get(new)
    if staged is None or not staged.valid or staged.definition != definition:
        plan.steps.append(
            Step(
                7,
                live.name,
                f"build index {new}: {definition}",
                [index_sql(definition, new, schema)],
                kind="index",
                args={"drop_first": staged is not None, "name": new},
            )
        )
    plan.steps.append(
        Step(
            7,
            live.name,
            f"replace index {name} ({have.definition}) by {new}",
            [f"DROP INDEX {schema}.{name}", f"ALTER INDEX {schema}.{new} RENAME TO {name}"],
        )
    )


def stale_defaults(conn: psycopg.Connection, project: Project, final: dict[str, TableShape]) -> list[Step]:
    """Column defaults of the database that a fresh apply does not give (a team's `expires_at DEFAULT now() +
    ...`, where the project's insert trigger fills it; and what LIKE ... INCLUDING DEFAULTS copied of it):
    dropped last, after the project's files, so the app can rely on them while adoption runs."""
    live_tables = set(read_tables(conn, project, project.schema))
    tables = sorted(t for t in final if t in live_tables)
    live = read_shapes(conn, project, project.schema, tables)
    steps = []
    for table in tables:
        for col in final[table].columns.values():
            have = live[table].columns.get(col.name)
            if (
                have is not None
                and have.default
                and not col.default
                and not col.identity
                and not have.identity
            ):
                steps.append(
                    Step(
                        9,
                        table,
                        f"drop default of {col.name} ({have.default})",
                        [f"ALTER TABLE {project.schema}.{table} ALTER COLUMN {col.name} DROP DEFAULT"],
                    )
                )
    return steps


def _not_null(plan: Plan, live: TableShape, column: str, t: str) -> None:
    check = (f"{live.name}_{column}"[: 63 - len(NOT_NULL_SUFFIX)]) + NOT_NULL_SUFFIX
    if check not in live.constraints:
        plan.steps.append(
            Step(
                4,
                live.name,
                f"check {column} IS NOT NULL (NOT VALID, for SET NOT NULL)",
                [f"ALTER TABLE {t} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID"],
            )
        )
    plan.steps.append(
        Step(
            6,
            live.name,
            f"validate {check}",
            [f"ALTER TABLE {t} VALIDATE CONSTRAINT {check}"],
            kind="concurrent",
        )
    )
    plan.steps.append(
        Step(
            6,
            live.name,
            f"{column} NOT NULL (proven by {check}, no scan)",
            [
                f"ALTER TABLE {t} ALTER COLUMN {column} SET NOT NULL",
                f"ALTER TABLE {t} DROP CONSTRAINT {check}",
            ],
        )
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _team_objects(
    conn: psycopg.Connection, plan: Plan, project: Project, target: Target, live: dict[str, TableShape]
) -> None:
    """The team's own columns, views, triggers, indexes and functions on or around our tables: kept as they are."""
    for name in plan.adopted_tables:
        ours = target.final.get(name)
        if ours is None:
            continue
        for col in live[name].columns:
            if col not in ours.columns:
                plan.team_objects.append({"kind": "column", "name": f"{name}.{col}", "detail": "kept"})
        for trig, fn in live[name].triggers.items():
            if (name, trig) not in target.final_triggers:
                plan.team_objects.append(
                    {"kind": "trigger", "name": f"{name}.{trig}", "detail": f"calls {fn}(); kept"}
                )
        for ix in live[name].indexes:
            if ix not in ours.indexes and ix not in ours.constraints and not ix.endswith(NEW_INDEX_SUFFIX):
                mine = next(
                    (
                        i
                        for i in target.shapes.get(name, TableShape(name)).indexes.values()
                        if i.definition == live[name].indexes[ix].definition
                    ),
                    None,
                )
                if mine is None:
                    plan.team_objects.append({"kind": "index", "name": ix, "detail": "kept"})
    functions = read_functions(conn, project, project.schema)
    ours_names = set(target.functions)
    for r in _rows(
        conn,
        catalogue_sql(project, "dependents"),
        {"schema": project.schema, "tables": plan.adopted_tables, "functions": []},
    ):
        if r["kind"] == "view" and r["name"] not in target.views:
            plan.team_objects.append(
                {"kind": "view", "name": r["name"], "detail": f"on {r['depends_on']}; kept"}
            )
    for r in functions:
        if r["name"] in ours_names:
            continue
        calls = sorted(n for n in ours_names if re.search(rf"\b{re.escape(n)}\s*\(", r["source"] or ""))
        detail = f"calls {', '.join(calls)}; kept" if calls else "kept"
        plan.team_objects.append(
            {"kind": "function", "name": f"{r['name']}({r['arguments']})", "detail": detail}
        )


def _function_drops(conn: psycopg.Connection, plan: Plan, project: Project, target: Target) -> None:
    """Live functions named like ours whose arguments or result differ: CREATE OR REPLACE cannot replace
    them (another result) or would add an overload beside them (other arguments, making a call by name
    ambiguous). Each is dropped in the same transaction that creates ours."""
    live = read_functions(conn, project, project.schema)
    conflicting = [
        r
        for r in live
        if r["name"] in target.functions and (r["arguments"], r["result"]) not in target.functions[r["name"]]
    ]
    if not conflicting:
        return
    dependents = _rows(
        conn,
        catalogue_sql(project, "dependents"),
        {"schema": project.schema, "tables": [], "functions": [r["oid"] for r in conflicting]},
    )
    for d in dependents:
        plan.blockers.append(
            f"{d['kind']} {d['name']} depends on function {d['depends_on']}, which adoption "
            "replaces (another signature or result): drop it, adopt, then create it again"
        )
    for r in conflicting:
        plan.function_drops.append(
            FunctionDrop(
                name=r["name"],
                arguments=r["arguments"],
                result=r["result"],
                file=target.function_files.get(r["name"], ""),
                executors=list(r["executors"] or []),
            )
        )


def _count_rules(conn: psycopg.Connection, plan: Plan, project: Project) -> None:
    """Run each rule's data test (inside the caller's transaction, each under a savepoint)."""
    from runner.quality import datatests

    tests = {t.name: t for t in datatests.singular(project)}
    for rule in RULES:
        test = tests.get(rule.name)
        if test is None:
            plan.rules.append(
                RuleCount(
                    rule.name, rule.table, "", rule.resolution, 0, [], f"sql/tests/{rule.name}.sql is missing"
                )
            )
            continue
        result = datatests.run_one(conn, test, sample=5)
        ids = [str(row.get("id")) for row in result.sample]
        plan.rules.append(
            RuleCount(
                rule.name, rule.table, test.description, rule.resolution, result.failures, ids, result.error
            )
        )


def _pending_files(conn: psycopg.Connection, project: Project, plan: Plan) -> list[str]:
    """The files `runner apply` would still run once the adopted versions are recorded."""
    from runner.errors import DriftError

    handled = set(plan.adopt_versions) | set(plan.create_versions)
    try:
        return [f.name for f, _ in migrate.plan(conn, project) if f.name not in handled]
    except DriftError as exc:
        plan.blockers.append(str(exc))
        return []
