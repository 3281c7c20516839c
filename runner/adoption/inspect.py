"""Read-only inspection of a database before adoption: what `runner apply` would have built (target.py: rendered into a
scratch schema inside a transaction that is rolled back), what the live schema has, and the rows that
break the project's rules. The result is a Plan (runner/adoption/plan.py); nothing is left behind."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from runner import migrate
from runner.adoption import online
from runner.adoption.diff import NEW_INDEX_SUFFIX, diff_table, stale_defaults
from runner.adoption.plan import FunctionDrop, Plan, RuleCount, TableShape
from runner.adoption.rules import RULES, catalogue_sql
from runner.adoption.target import Target, build_target, fetch_rows, read_functions, read_shapes, read_tables
from runner.project import Project

if TYPE_CHECKING:
    import psycopg


log = logging.getLogger(__name__)

ADOPTION_LOG = "runner_adoption_log"


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
        functions = read_functions(conn, project, project.schema)
        _function_drops(conn, plan, project, target, functions)
        plan.target_final = target.final
        plan.steps += stale_defaults(conn, project, target.final)
        live = read_shapes(conn, project, project.schema, sorted(live_tables))
        # What an adoption stopped after a file's transaction left of its second part (online.py).
        plan.steps += online.deferred_left(versioned, set(done), project.schema, target.final, live)
        if plan.history != "complete":
            _plan_versions(plan, project, target, live_tables, done)
            for table in plan.adopted_tables:
                diff_table(plan, live[table], target.shapes[table], project.schema)
            _team_objects(conn, plan, project, target, live, functions)
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


def _team_objects(
    conn: psycopg.Connection,
    plan: Plan,
    project: Project,
    target: Target,
    live: dict[str, TableShape],
    functions: list[dict[str, Any]],
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
    ours_names = set(target.functions)
    for r in fetch_rows(
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


def _function_drops(
    conn: psycopg.Connection, plan: Plan, project: Project, target: Target, live: list[dict[str, Any]]
) -> None:
    """Live functions named like ours whose arguments or result differ: CREATE OR REPLACE cannot replace
    them (another result) or would add an overload beside them (other arguments, making a call by name
    ambiguous). Each is dropped in the same transaction that creates ours."""
    conflicting = [
        r
        for r in live
        if r["name"] in target.functions and (r["arguments"], r["result"]) not in target.functions[r["name"]]
    ]
    if not conflicting:
        return
    dependents = fetch_rows(
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
