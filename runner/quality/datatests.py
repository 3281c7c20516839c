"""Data tests: queries returning the rows that break a rule, run read-only, PASS or FAIL with a sample.

Two kinds, as dbt has them:

- **singular**: ``sql/tests/<name>.sql``, a Jinja template rendered with the same context as every other
  SQL file (``settings``, ``plans``, the macros), holding ONE query that returns the offending rows (its
  first column ``id`` where the rows have ids). The file's first line says the rule:
  ``-- <one-line rule description>``.
- **generic**: declared per table and column in ``sql/project.toml`` and rendered by the macros of
  ``sql/macros/data_tests.sql``::

      [tests.payment_checkout_sessions]
      unique = ["stripe_session_id"]                      # or "user_id, subscription_plan" (together)
      not_null = ["email"]
      accepted_values.payment_provider = "settings.providers"   # a list, or a Jinja expression
      relationships.subscription_plan = "subscription_plans.code"
      expression.expiry_after_creation = "expires_at > created_at"   # rows where it is false fail

  Their names are ``<table>.<column>.<test>`` (``<table>.<name>`` for an expression).

A test passes when its query returns no row. None may return a row on a healthy database (DESIGN.md).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError, DataTestSelectionError, ProjectError, TemplateError
from runner.project import CONFIG_FILE, Project

if TYPE_CHECKING:
    import psycopg

TESTS_DIR = "tests"
MACROS = "macros/data_tests.sql"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DESCRIPTION = re.compile(r"^--\s*(?P<text>\S.*?)\s*$")
GENERIC_KINDS = ("unique", "not_null", "accepted_values", "relationships", "expression")


@dataclass(frozen=True)
class DataTest:
    """One rule: its name, what it says, and the rendered query returning the rows that break it."""

    name: str
    description: str
    sql: str
    source: str  # where it is declared: sql/tests/<name>.sql, or sql/project.toml [tests.<table>]
    kind: str = "singular"  # or one of GENERIC_KINDS


@dataclass(frozen=True)
class DataTestResult:
    """What running one test found: how many rows break the rule, and the first few of them."""

    name: str
    description: str
    passed: bool
    failures: int
    sample: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""
    error: str | None = None  # the query itself failed (a missing table, a syntax error): not passed
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: numbers stay numbers, NUMERIC and uuids become strings, timestamps ISO 8601."""
        return {
            "name": self.name,
            "description": self.description,
            "passed": self.passed,
            "failures": self.failures,
            "error": self.error,
            "source": self.source,
            "seconds": round(self.seconds, 3),
            "sample": [{k: json_value(v) for k, v in row.items()} for row in self.sample],
        }


# -- loading -----------------------------------------------------------------------------------------
def load(project: Project) -> list[DataTest]:
    """Every data test of the project: the files of sql/tests/ (by name), then the generic tests of
    sql/project.toml (in the order declared)."""
    tests = singular(project) + generic(project)
    seen: dict[str, str] = {}
    for t in tests:
        if t.name in seen:
            raise ProjectError(f"{t.source}: data test {t.name!r} is also declared in {seen[t.name]}")
        seen[t.name] = t.source
    return tests


def singular(project: Project) -> list[DataTest]:
    """The tests of sql/tests/*.sql, rendered."""
    folder = project.sql_dir / TESTS_DIR
    tests = []
    for path in sorted(folder.glob("*.sql")) if folder.is_dir() else []:
        where = f"sql/{TESTS_DIR}/{path.name}"
        if not NAME.match(path.stem):
            raise ProjectError(f"{where}: name data tests with lower-case letters, digits and _")
        first = (path.read_text(encoding="utf-8").splitlines() or [""])[0]
        match = DESCRIPTION.match(first.strip())
        if match is None or match["text"].startswith("{"):
            raise ProjectError(f"{where}: the first line must be `-- <the rule, in one line>`")
        sql = _one_query(project.render(f"{TESTS_DIR}/{path.name}"), where)
        tests.append(DataTest(name=path.stem, description=match["text"], sql=sql, source=where))
    return tests


def generic(project: Project) -> list[DataTest]:
    """The tests declared in sql/project.toml's [tests.<table>] sections, rendered."""
    declared = project.config.get("tests", {})
    where = f"sql/{CONFIG_FILE}"
    if not isinstance(declared, dict):
        raise ConfigError(f"{where}: [tests] must be a table of tables, one per table: [tests.<table>]")
    tests: list[DataTest] = []
    for table, kinds in declared.items():
        section = f"{where} [tests.{table}]"
        _ident(table, section, "table")
        if not isinstance(kinds, dict):
            raise ConfigError(f"{section}: must be a table of tests ({', '.join(GENERIC_KINDS)})")
        for kind, spec in kinds.items():
            if kind not in GENERIC_KINDS:
                raise ConfigError(f"{section}: unknown test {kind!r} (known: {', '.join(GENERIC_KINDS)})")
            tests.extend(_generic_tests(project, table, kind, spec, section))
    return tests


def _generic_tests(project: Project, table: str, kind: str, spec: Any, section: str) -> Iterable[DataTest]:
    if kind in ("unique", "not_null"):
        if not isinstance(spec, list) or not all(isinstance(c, str) for c in spec):
            raise ConfigError(f"{section}: {kind} must be a list of column names")
        for entry in spec:
            columns = [c.strip() for c in entry.split(",")]
            for column in columns:
                _ident(column, section, "column")
            if kind == "not_null" and len(columns) != 1:
                raise ConfigError(f"{section}: not_null takes one column per entry, got {entry!r}")
            label = "+".join(columns)
            what = f"{table}.({', '.join(columns)})" if len(columns) > 1 else f"{table}.{label}"
            description = (
                f"{what} is unique (among rows where it is set)"
                if kind == "unique"
                else f"{what} is never NULL"
            )
            yield _generic(
                project, f"{table}.{label}.{kind}", kind, description, section, table=table, columns=columns
            )
        return
    if not isinstance(spec, dict):
        raise ConfigError(f"{section}: {kind} must be a table: {kind}.<name> = ...")
    for key, value in spec.items():
        if kind == "accepted_values":
            _ident(key, section, "column")
            values = _accepted(project, value, f"{section} accepted_values.{key}")
            shown = ", ".join(map(str, values))
            yield _generic(
                project,
                f"{table}.{key}.accepted_values",
                kind,
                f"{table}.{key} is one of: {shown} (or NULL)",
                section,
                table=table,
                column=key,
                values=values,
            )
        elif kind == "relationships":
            _ident(key, section, "column")
            target = value.split(".") if isinstance(value, str) else []
            if len(target) != 2:
                raise ConfigError(f'{section}: relationships.{key} must be "<table>.<column>", got {value!r}')
            for part in target:
                _ident(part, section, "table or column")
            yield _generic(
                project,
                f"{table}.{key}.relationships",
                kind,
                f"every {table}.{key} is a {value}",
                section,
                table=table,
                column=key,
                to_table=target[0],
                to_column=target[1],
            )
        else:  # expression
            _ident(key, section, "expression name")
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f'{section}: expression.{key} must be a SQL condition, e.g. "a > b"')
            condition = _render_string(project, value, f"{section} expression.{key}")
            yield _generic(
                project,
                f"{table}.{key}",
                kind,
                f"{table}: {condition}",
                section,
                table=table,
                condition=condition,
            )


def _generic(project: Project, name: str, kind: str, description: str, source: str, **args: Any) -> DataTest:
    # Through the macros file, with the project's own Jinja environment: the same context and macros
    # (m.q for the schema) as every other SQL file, so a DBA reads (and may change) what a test runs.
    call = ", ".join(f"{key}={key}" for key in args)
    template = f'{{% import "{MACROS}" as t %}}{{{{ t.{kind}({call}) }}}}'
    sql = _render_string(project, template, source, **args)
    return DataTest(name=name, description=description, sql=_one_query(sql, source), source=source, kind=kind)


def _render_string(project: Project, source: str, where: str, **context: Any) -> str:
    import jinja2

    try:
        return project._environment().from_string(source).render(**context).strip()
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(f"{where}: template not found: sql/{exc.name}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"{where}: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{where}: {exc.message} (define it in sql/{CONFIG_FILE})") from None


def _accepted(project: Project, value: Any, where: str) -> list[Any]:
    """accepted_values: a TOML list, or a Jinja expression over the project's context
    (``settings.providers``, ``plans | map(attribute='code') | list``)."""
    if isinstance(value, str):
        import jinja2

        expression = value
        try:
            value = project._environment().compile_expression(expression, undefined_to_none=False)()
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{where}: {expression!r}: {exc}") from None
        if isinstance(value, jinja2.Undefined):
            raise TemplateError(f"{where}: {expression!r} is undefined (define it in sql/{CONFIG_FILE})")
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise ConfigError(f"{where}: must give a non-empty list of values")
    for v in value:
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise ConfigError(f"{where}: values must be strings or numbers, got {v!r}")
    return list(value)


def _ident(value: Any, where: str, what: str) -> None:
    if not isinstance(value, str) or not IDENT.match(value):
        raise ConfigError(f"{where}: {what} {value!r} must be a lower-case SQL identifier")


def _one_query(sql: str, where: str) -> str:
    """The query without its final semicolon; a second statement is an error (one rule, one query)."""
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise ProjectError(f"{where}: no query (a data test is one query returning the rows that break it)")
    for line in text.splitlines():
        code = line.split("--", 1)[0].rstrip()
        if code.endswith(";"):
            raise ProjectError(f"{where}: one query only (a data test returns the rows that break one rule)")
    return text


# -- running -----------------------------------------------------------------------------------------
def select_tests(tests: Sequence[DataTest], select: Sequence[str] | str | None) -> list[DataTest]:
    """The tests matching any pattern of `select`: a name, a shell pattern (``archive_*``), or a prefix
    of dotted names (``payment_checkout_sessions`` selects that table's generic tests). None: all."""
    if not select:
        return list(tests)
    patterns = [select] if isinstance(select, str) else list(select)
    chosen: list[DataTest] = []
    for pattern in patterns:
        matched = [
            t
            for t in tests
            if t.name == pattern or fnmatch.fnmatchcase(t.name, pattern) or t.name.startswith(pattern + ".")
        ]
        if not matched:
            raise DataTestSelectionError(
                f"no data test matches {pattern!r} (`runner test --list` shows the {len(tests)} there are)"
            )
        chosen += [t for t in matched if t not in chosen]
    return [t for t in tests if t in chosen]


def run(
    conn: psycopg.Connection,
    project: Project,
    select: Sequence[str] | str | None = None,
    sample: int = 5,
    tests: Sequence[DataTest] | None = None,
) -> list[DataTestResult]:
    """Run the data tests (all, or those `select` names) in read-only transactions, one each: how many
    rows break each rule and the first `sample` of them. `conn` should be in autocommit mode; a test
    whose query fails is reported (not passed) and the others still run."""
    chosen = select_tests(load(project) if tests is None else tests, select)
    return [run_one(conn, t, sample) for t in chosen]


def run_one(conn: psycopg.Connection, test: DataTest, sample: int = 5) -> DataTestResult:
    """Run one data test; its query's own errors become the result's `error`."""
    import psycopg

    sample = max(0, int(sample))
    started = time.monotonic()
    # One pass over the offending rows: the window counts them all while LIMIT keeps the first few. The
    # newline before ")" ends a trailing -- comment of the test's query.
    if sample:
        query = f"SELECT count(*) OVER () AS runner_failures, failing.*\n  FROM (\n{test.sql}\n) AS failing\n LIMIT {sample}"
    else:
        query = f"SELECT count(*) AS runner_failures FROM (\n{test.sql}\n) AS failing"
    try:
        with conn.transaction():
            if conn.autocommit:
                conn.execute("SET TRANSACTION READ ONLY")
            cursor = conn.execute(query)
            columns = [c.name for c in cursor.description or []][1:]
            rows = cursor.fetchall()
    except psycopg.Error as exc:
        if conn.closed or isinstance(exc, psycopg.OperationalError):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        sqlstate = getattr(exc, "sqlstate", None)
        return DataTestResult(
            name=test.name,
            description=test.description,
            passed=False,
            failures=0,
            source=test.source,
            error=f"{first}{f' [SQLSTATE {sqlstate}]' if sqlstate else ''}",
            seconds=time.monotonic() - started,
        )
    failures = int(rows[0][0]) if rows else 0
    found = [dict(zip(columns, row[1:], strict=True)) for row in rows] if sample else []
    return DataTestResult(
        name=test.name,
        description=test.description,
        passed=failures == 0,
        failures=failures,
        sample=found,
        source=test.source,
        seconds=time.monotonic() - started,
    )


def json_value(value: Any) -> Any:
    """A sample value for JSON: exact (NUMERIC as a string), timestamps ISO 8601."""
    if value is None or isinstance(value, bool | int | float | str | dict | list):
        return value
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


# -- output ------------------------------------------------------------------------------------------
SAMPLE_WIDTH = 40


def to_text(results: Sequence[DataTestResult]) -> str:
    """PASS/FAIL per test, the failing rows' count and sample under a failure, and a closing count."""
    lines = []
    for r in results:
        if r.error:
            lines.append(f"ERROR {r.name}: {r.error}  ({r.source})")
        elif r.passed:
            lines.append(f"PASS  {r.name}")
        else:
            lines.append(
                f"FAIL  {r.name}: {r.failures} row{'s' if r.failures != 1 else ''} "
                f"break{'s' if r.failures == 1 else ''} it: {r.description}"
            )
            lines += ["      " + line for line in _sample_table(r.sample, r.failures)]
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    return "\n".join(lines)


def _sample_table(sample: Sequence[dict[str, Any]], failures: int) -> list[str]:
    if not sample:
        return []
    columns = list(sample[0])

    def cell(value: Any) -> str:
        text = "" if value is None else str(json_value(value))
        return text if len(text) <= SAMPLE_WIDTH else text[: SAMPLE_WIDTH - 3] + "..."

    cells = [[cell(row.get(c)) for c in columns] for row in sample]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    rows = [columns, ["-" * w for w in widths], *cells]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    if failures > len(sample):
        lines.append(f"({len(sample)} of {failures} rows shown)")
    return lines
