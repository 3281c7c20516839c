"""The steps that bring a live table to the shape the project wants: columns, defaults, NOT NULL, constraints
(NOT VALID, then validated) and indexes (CONCURRENTLY), each under a short lock timeout."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.adoption.plan import Plan, Step, TableShape
from runner.adoption.target import index_sql, read_shapes, read_tables
from runner.project import Project

if TYPE_CHECKING:
    import psycopg


NOT_NULL_SUFFIX = "_adopt_not_null"
NEW_INDEX_SUFFIX = "_adopt"


def diff_table(plan: Plan, live: TableShape, want: TableShape, schema: str) -> None:
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
                _comment_column(plan, live.name, col.name, col.comment, t)
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
            _comment_column(plan, live.name, col.name, col.comment, t)
    if want.comment and want.comment != live.comment:
        plan.steps.append(
            Step(2, live.name, "comment on table", [f"COMMENT ON TABLE {t} IS {_literal(want.comment)}"])
        )

    for con in want.constraints.values():
        have_con = live.constraints.get(con.name)
        if have_con is not None:
            if have_con.definition == con.definition and have_con.type == con.type:
                if not have_con.validated:
                    _validate(plan, live.name, con.name, t)
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
                _validate(plan, live.name, con.name, t)
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
            _validate(plan, live.name, con.name, t)
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
    _validate(plan, live.name, check, t)
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


def _validate(plan: Plan, table: str, constraint: str, t: str) -> None:
    """VALIDATE CONSTRAINT, outside any transaction: its lock lets reads and writes through."""
    plan.steps.append(
        Step(
            6,
            table,
            f"validate {constraint}",
            [f"ALTER TABLE {t} VALIDATE CONSTRAINT {constraint}"],
            kind="concurrent",
        )
    )


def _comment_column(plan: Plan, table: str, column: str, comment: str, t: str) -> None:
    plan.steps.append(
        Step(
            2,
            table,
            f"comment on column {column}",
            [f"COMMENT ON COLUMN {t}.{column} IS {_literal(comment)}"],
        )
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
