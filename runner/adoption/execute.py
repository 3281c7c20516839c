"""Carrying an adoption plan out while the tables keep serving, then recording the database as `runner apply`
would have built it.

Every statement that needs a lock stronger than the one reads and writes take runs in its own short
transaction under `lock_timeout` and is retried with a back-off when it cannot get its lock, so the app's
queries never queue behind it for longer than the timeout. Constraints are added NOT VALID and validated
afterwards (validation takes a lock that lets reads and writes through), NOT NULL is proven by a validated
CHECK first (so SET NOT NULL does not scan), and indexes are built CONCURRENTLY. Each step reads the live
catalogue again on the next run, so an adoption killed at any point is finished by running it again.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner import migrate
from runner.adoption import diff, online, target
from runner.adoption import inspect as inspection
from runner.adoption.plan import FunctionDrop, Plan, Step
from runner.adoption.rules import RULES, Rule, resolution_sql
from runner.errors import AdoptionError, MigrationError, first_line
from runner.locks import APPLY_LOCK, advisory_lock
from runner.project import Project, SqlFile

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

BATCH = 5000
ATTEMPTS = 60  # lock attempts per step before giving up (with the back-off: a few minutes)
UNIQUE_ATTEMPTS = 3  # a unique index that meets duplicates written meanwhile: resolve and build again


@dataclass
class AdoptResult:
    plan: Plan
    steps: int = 0
    resolved: dict[str, int] = field(default_factory=dict)  # rule -> rows logged
    applied: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)
    lock_retries: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.as_dict(),
            "steps": self.steps,
            "resolved": self.resolved,
            "applied": self.applied,
            "recorded": self.recorded,
            "lock_retries": self.lock_retries,
            "seconds": round(self.seconds, 3),
        }


def check(connect: Callable[[], psycopg.Connection], project: Project) -> Plan:
    """The plan, changing nothing (`runner adopt --check`)."""
    project.files()  # a template error stops us before the database is touched
    conn = connect()
    try:
        return inspection.inspect(conn, project)
    finally:
        conn.close()


class _Runner:
    """Runs statements under the lock timeout, with retries, on one autocommit connection."""

    def __init__(
        self,
        conn: psycopg.Connection,
        project: Project,
        lock_timeout: float,
        on_step: Callable[[str], None] | None,
    ):
        self.conn, self.project = conn, project
        self.timeout_ms = max(1, int(lock_timeout * 1000))
        self.on_step = on_step or (lambda _message: None)
        self.retries = 0
        self._tests: dict[str, str] | None = None

    def tests(self) -> dict[str, str]:
        """The data tests' rendered queries by name (sql/tests/)."""
        if self._tests is None:
            from runner.quality import datatests

            self._tests = {t.name: t.sql for t in datatests.singular(self.project)}
        return self._tests

    def retrying(self, what: str, fn: Callable[[], Any]) -> Any:
        import psycopg

        delay = 0.05
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return fn()
            except psycopg.errors.LockNotAvailable:
                self.retries += 1
                if attempt == ATTEMPTS:
                    break
                log.info(
                    "%s: lock not available within %d ms, retrying in %.2fs", what, self.timeout_ms, delay
                )
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)
            except psycopg.errors.QueryCanceled as exc:  # lock_timeout in some paths reports as canceled
                if "lock timeout" not in str(exc):
                    raise
                self.retries += 1
                time.sleep(delay)
        raise AdoptionError(
            f"{what}: could not get its lock within {self.timeout_ms} ms in {ATTEMPTS} attempts (long "
            "transactions on the table?); nothing of this step was applied. Run `runner adopt` again later, "
            "or with a larger --lock-timeout"
        )

    def transaction(self, what: str, statements: list[str], params: dict | None = None) -> Any:
        def run():
            with self.conn.transaction():
                self.conn.execute(f"SET LOCAL lock_timeout = '{self.timeout_ms}ms'")
                self.conn.execute(f"SET LOCAL search_path = {self.project.schema}, pg_catalog")
                result = None
                for sql in statements:
                    result = self.conn.execute(sql, params).fetchone() if params else self.conn.execute(sql)
                return result

        return self.retrying(what, run)

    def outside(self, statement: str) -> None:
        """A statement that cannot run in a transaction (CONCURRENTLY) or takes only a lock that lets reads
        and writes through (VALIDATE): no lock timeout, since waiting blocks nobody."""
        self.conn.execute(f"SET search_path = {self.project.schema}, pg_catalog")
        try:
            self.conn.execute(statement)
        finally:
            self.conn.execute("RESET search_path")


def adopt(
    connect: Callable[[], psycopg.Connection],
    project: Project,
    *,
    lock_timeout: float = 0.5,
    apply_lock_timeout: float = 60.0,
    batch: int = BATCH,
    on_step: Callable[[str], None] | None = None,
) -> AdoptResult:
    """Adopt the database: upgrade the reference's tables in place, resolve dirty rows (each change in
    runner_adoption_log), record the overlapping versions as applied and apply the rest as `runner apply`."""

    start = time.monotonic()
    project.files()
    conn = connect()
    try:
        with advisory_lock(conn, APPLY_LOCK, apply_lock_timeout, what="apply or adopt"):
            plan = inspection.inspect(conn, project)
            if plan.blockers:
                raise AdoptionError("cannot adopt: " + "; ".join(plan.blockers))
            result = AdoptResult(plan=plan)
            if plan.nothing_to_do:
                result.seconds = time.monotonic() - start
                return result
            run = _Runner(conn, project, lock_timeout, on_step)
            migrate.ensure_history(conn, project)
            versioned = {f.name: f for f in project.versioned()}
            _ensure_log_table(run, versioned.values())
            for name in plan.create_versions:
                run.on_step(f"create  sql/{name}")
                run.retrying(f"sql/{name}", lambda f=versioned[name]: _run_locked(run, f))
                result.applied.append(name)
            _steps(run, plan, 2, result)
            tables = set(plan.adopted_tables)
            tables_before = _live_tables(run)
            run.retrying("seed the plan catalogue", lambda: _in_transaction(run, inspection.seed_plans))
            _resolve(run, result, batch, tables=None)
            _steps(run, plan, 4, result)
            _resolve(run, result, batch, tables=None)  # rows written before the constraints took effect
            _steps(run, plan, 6, result)
            _steps(run, plan, 7, result, batch=batch, tables=tables)
            _steps(run, plan, 8, result, batch=batch)
            if plan.adopt_versions:
                with conn.transaction():
                    for name in plan.adopt_versions:
                        migrate._record(conn, project, versioned[name], 0)
                result.recorded = list(plan.adopt_versions)
                run.on_step("record  " + ", ".join(f"sql/{n}" for n in plan.adopt_versions))
            _apply_rest(run, plan, result)
            # Rules on the tables the later files created (rows the app wrote while they were being applied).
            _resolve(run, result, batch, tables=None, only=lambda rule: rule.table not in tables_before)
            # Defaults the project does not have, found now: a table created meanwhile may have copied one.
            plan.steps = [s for s in plan.steps if s.phase != 9]
            plan.steps += diff.stale_defaults(conn, project, plan.target_final or {})
            _steps(run, plan, 9, result)
            result.lock_retries = run.retries
    finally:
        conn.close()
    result.seconds = time.monotonic() - start
    return result


def _in_transaction(run: _Runner, fn: Callable[[psycopg.Connection, Project], None]) -> None:
    with run.conn.transaction():
        run.conn.execute(f"SET LOCAL lock_timeout = '{run.timeout_ms}ms'")
        fn(run.conn, run.project)


def _live_tables(run: _Runner) -> set[str]:
    return set(target.read_tables(run.conn, run.project, run.project.schema))


def _ensure_log_table(run: _Runner, files) -> None:
    """runner_adoption_log before any resolution: its versioned file is idempotent (IF NOT EXISTS), so it is
    run here unrecorded and recorded when `runner apply`'s turn comes."""
    for f in files:
        if "runner_adoption_log" in f.rendered and "CREATE TABLE IF NOT EXISTS" in f.rendered:
            run.transaction(f"sql/{f.name}", [f.rendered])
            return
    raise AdoptionError(
        "no versioned file creates runner_adoption_log (sql/tables/V040__runner_adoption_log.sql)"
    )


def _run_locked(run: _Runner, f: SqlFile) -> int:
    """A project file in its own transaction with its history row, under the lock timeout."""
    run.conn.execute(f"SET lock_timeout = '{run.timeout_ms}ms'")
    try:
        return migrate._run_file(run.conn, run.project, f)
    except MigrationError as exc:
        if exc.sqlstate == "55P03":  # lock_timeout: retried by the caller
            import psycopg

            raise psycopg.errors.LockNotAvailable(str(exc)) from None
        raise
    finally:
        run.conn.execute("RESET lock_timeout")


def _steps(
    run: _Runner,
    plan: Plan,
    phase: int,
    result: AdoptResult,
    batch: int = BATCH,
    tables: set[str] | None = None,
) -> None:
    for step in (s for s in plan.steps if s.phase == phase):
        _run_step(run, step, result, batch)


def _run_step(run: _Runner, step: Step, result: AdoptResult, batch: int) -> None:
    run.on_step(f"{step.table}: {step.description}")
    if step.kind == "ddl":
        run.transaction(f"{step.table}: {step.description}", step.sql)
    elif step.kind == "concurrent":
        for sql in step.sql:
            _validate(run, step, sql)
    elif step.kind == "index":
        _build_index(run, step, result, batch)
    elif step.kind == "identity":
        _identity(run, step)
    result.steps += 1


def _validate(run: _Runner, step: Step, sql: str) -> None:
    import psycopg

    try:
        run.outside(sql)
    except psycopg.errors.CheckViolation as exc:
        raise AdoptionError(
            f"{step.table}: {step.description}: rows still break it ({first_line(exc)}); "
            "no rule of sql/tests/ resolves them: fix them by hand (`runner adopt --check` lists "
            "the rules), then run `runner adopt` again"
        ) from None
    except psycopg.errors.ForeignKeyViolation as exc:
        raise AdoptionError(
            f"{step.table}: {step.description}: {first_line(exc)}; fix the rows by hand, "
            "then run `runner adopt` again"
        ) from None


def _build_index(run: _Runner, step: Step, result: AdoptResult, batch: int) -> None:
    """CREATE INDEX CONCURRENTLY; a unique one that meets duplicates written meanwhile (by the app's old
    functions) leaves an invalid index: drop it, resolve the table's rules again, build again."""
    import psycopg

    schema = run.project.schema
    name = step.args.get("name")
    for attempt in range(1, UNIQUE_ATTEMPTS + 1):
        if step.args.get("drop_first") or attempt > 1:
            run.outside(f"DROP INDEX CONCURRENTLY IF EXISTS {schema}.{name or _index_name(step.sql[0])}")
        try:
            run.outside(step.sql[0])
            return
        except psycopg.errors.UniqueViolation:
            if attempt == UNIQUE_ATTEMPTS:
                raise AdoptionError(
                    f"{step.table}: {step.description}: duplicates keep appearing; run `runner adopt` again"
                ) from None
            _resolve(run, result, batch, tables={step.table})


def _index_name(create_sql: str) -> str:
    return create_sql.split(" CONCURRENTLY ", 1)[1].split(" ", 1)[0]


def _identity(run: _Runner, step: Step) -> None:
    """A serial id becomes GENERATED ... AS IDENTITY (as a fresh apply makes it), numbering on after the
    highest id and the old sequence's last value: in one short transaction."""
    schema, table = run.project.schema, step.table
    column, sequence = step.args["column"], step.args["sequence"]
    kind = "ALWAYS" if step.args["identity"] == "a" else "BY DEFAULT"
    statements = [f"LOCK TABLE {schema}.{table} IN ACCESS EXCLUSIVE MODE"]
    if sequence:
        statements += [
            "CREATE TEMP TABLE IF NOT EXISTS runner_adopt_next (n bigint) ON COMMIT DROP",
            (
                f"INSERT INTO runner_adopt_next SELECT greatest((SELECT max({column}) FROM {schema}.{table}), "
                f"(SELECT last_value FROM {sequence}))"
            ),
            f"ALTER TABLE {schema}.{table} ALTER COLUMN {column} DROP DEFAULT",
            f"DROP SEQUENCE {sequence}",
        ]
    else:
        statements += [
            "CREATE TEMP TABLE IF NOT EXISTS runner_adopt_next (n bigint) ON COMMIT DROP",
            f"INSERT INTO runner_adopt_next SELECT max({column}) FROM {schema}.{table}",
        ]
    statements += [
        f"ALTER TABLE {schema}.{table} ALTER COLUMN {column} ADD GENERATED {kind} AS IDENTITY",
        (
            f"SELECT setval(pg_get_serial_sequence('{schema}.{table}', '{column}'), "
            f"coalesce((SELECT n FROM runner_adopt_next), 0) + 1, false)"
        ),
    ]
    run.transaction(f"{table}: {step.description}", statements)


def _resolve(
    run: _Runner,
    result: AdoptResult,
    batch: int,
    tables: set[str] | None,
    only: Callable[[Rule], bool] = lambda _rule: True,
) -> None:
    """Every rule, in order, in batches of short transactions, until no row of it is left."""
    live = _live_tables(run)
    for rule in RULES:
        if (tables is not None and rule.table not in tables) or not only(rule):
            continue
        if rule.table not in live or "subscription_plans" not in live:
            continue
        changed = _resolve_rule(run, rule, batch)
        if changed:
            result.resolved[rule.name] = result.resolved.get(rule.name, 0) + changed
            run.on_step(f"resolve {rule.name}: {changed} row(s) changed, each logged in runner_adoption_log")


def _resolve_rule(run: _Runner, rule: Rule, batch: int) -> int:
    # A plain count first: without an ORDER BY the planner reads the table once in physical order, where the
    # batches walk it in id order (random reads); most rules find nothing, most of the time.
    test = run.tests().get(rule.name)
    if (
        test is not None
        and not run.conn.execute(f"SELECT count(*) FROM (\n{test}\n) AS failing").fetchone()[0]
    ):
        return 0
    sql = resolution_sql(run.project, rule)
    after: str | None = None
    total = 0
    while True:
        row = run.transaction(f"resolve {rule.name}", [sql], {"after": after, "batch": batch})
        changed, seen, last_id = row
        total += changed
        if seen < batch or last_id is None:
            return total
        after = last_id


def _apply_rest(run: _Runner, plan: Plan, result: AdoptResult) -> None:
    """The files `runner apply` would run now, in its order, each in one transaction with its history row;
    a function file whose function the database has with other arguments or result drops that one first,
    in the same transaction, so callers never find the function missing."""
    drops: dict[str, list[FunctionDrop]] = {}
    for d in plan.function_drops:
        drops.setdefault(d.file, []).append(d)
    adopted = set(plan.adopted_tables)
    for f, action in migrate.plan(run.conn, run.project):
        run.on_step(f"{action:<7} {f.label}")
        split = online.split(f, run.project.schema, adopted) if f.kind == "versioned" else None
        if split is not None:
            _run_split(run, f, split, result)
        elif f.name in drops:
            run.retrying(f.label, lambda f=f: _run_with_drops(run, f, drops[f.name]))
        else:
            run.retrying(f.label, lambda f=f: _run_locked(run, f))
        result.applied.append(f.name)


def _run_with_drops(run: _Runner, f: SqlFile, drops: list[FunctionDrop]) -> None:
    """Drop the database's functions, run the file, and give the roles that could execute the old ones
    (the app's role, granted by name) EXECUTE on the new ones: one transaction."""
    import psycopg

    schema = run.project.schema
    start = time.monotonic()
    try:
        with run.conn.transaction():
            run.conn.execute(f"SET LOCAL lock_timeout = '{run.timeout_ms}ms'")
            for d in drops:
                run.conn.execute(f"DROP FUNCTION IF EXISTS {schema}.{d.name}({d.arguments})")
            run.conn.execute(f.rendered)
            for d in drops:
                signatures = [
                    r[0]
                    for r in run.conn.execute(
                        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                        "WHERE n.nspname = %s AND p.proname = %s",
                        (schema, d.name),
                    )
                ]
                for role in d.executors:
                    for signature in signatures:
                        run.conn.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {role}")
            migrate._record(run.conn, run.project, f, int((time.monotonic() - start) * 1000))
    except psycopg.errors.LockNotAvailable:
        raise
    except psycopg.Error as exc:
        raise MigrationError(f"{f.label}: {first_line(exc)}; nothing of this file was applied") from None


def _run_split(run: _Runner, f: SqlFile, split: online.OnlineFile, result: AdoptResult) -> None:
    """A versioned file that indexes or constrains an adopted table (runner/adoption/online.py): the file
    with its history row in one transaction (constraints NOT VALID, those indexes left out), then each
    constraint validated and each index built CONCURRENTLY, none of which stops the app's reads or writes."""
    import psycopg

    def first() -> None:
        start = time.monotonic()
        try:
            with run.conn.transaction():
                run.conn.execute(f"SET LOCAL lock_timeout = '{run.timeout_ms}ms'")
                run.conn.execute(split.transaction)
                migrate._record(run.conn, run.project, f, int((time.monotonic() - start) * 1000))
        except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled):
            raise
        except psycopg.Error as exc:
            raise MigrationError(f"{f.label}: {first_line(exc)}; nothing of this file was applied") from None

    run.retrying(f.label, first)
    for step in split.after:
        _run_step(run, step, result, BATCH)
