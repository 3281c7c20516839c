"""Reports: the named, parameterised queries of sql/reports/, their headers, typed parameters and output.

A report file begins with a header the runner reads::

    -- report: conversion_rate
    -- description: Share of checkout sessions ... completed.
    -- param: days integer default 30 min 1 max 3650 -- window: sessions created in the last N days

Types: integer (with optional min/max), text, interval (``90 minutes``, ``6 hours``, ``1 day 2 hours``),
date (``2025-01-31``). ``default none`` makes a parameter optional (SQL NULL). Values are checked here and
passed to PostgreSQL as bound parameters (``%(days)s`` in the file); Jinja renders only structure.

`runner report list` prints `listing()` without importing click (runner/launch.py): this module imports
nothing costly at the top (no dataclasses, which imports inspect; no runner.project, which renders).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from runner.errors import ProjectNotApplied, ReportError, ReportParameterError

if TYPE_CHECKING:
    from pathlib import Path

    import psycopg

    from runner.project import Project

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
HEADER = re.compile(r"^--\s*(?P<key>report|description|param)\s*:\s*(?P<value>.*?)\s*$")
PARAM = re.compile(
    r"^(?P<name>[a-z_][a-z0-9_]*)\s+(?P<type>integer|text|interval|date)"
    r"(?:\s+default\s+(?P<default>.+?))?"
    r"(?:\s+min\s+(?P<min>-?\d+))?(?:\s+max\s+(?P<max>-?\d+))?"
    r"\s*(?:--\s*(?P<description>.*))?$"
)
INTERVAL_PART = re.compile(r"(\d{1,9})\s*(second|minute|hour|day|week)s?", re.IGNORECASE)
INTERVAL = re.compile(rf"^\s*(?:{INTERVAL_PART.pattern}\s*)+$", re.IGNORECASE)
INTEGER = re.compile(r"^[+-]?\d{1,18}$")
MAX_TEXT = 500
MAX_INTERVAL_DAYS = 36_500  # a century: older than any row, well inside PostgreSQL's and Python's ranges
FORMATS = ("table", "csv", "json")


class Param(NamedTuple):
    """One declared parameter of a report."""

    name: str
    type: str
    default: Any = None
    default_text: str = "none"
    minimum: int | None = None
    maximum: int | None = None
    description: str = ""

    @property
    def optional(self) -> bool:
        return self.default is None

    def convert(self, raw: str, report: str) -> Any:
        """The Python value for `raw`, or ReportParameterError saying what was expected."""
        where = f"report {report}: parameter {self.name}"
        text = raw.strip()
        if text.lower() in ("", "none", "null"):
            if self.optional:
                return None
            raise ReportParameterError(f"{where} needs a value ({self.type})")
        if self.type == "integer":
            if not INTEGER.match(text):
                raise ReportParameterError(f"{where} must be an integer, got {raw!r}")
            value = int(text)
            if self.minimum is not None and value < self.minimum:
                raise ReportParameterError(f"{where} must be at least {self.minimum}, got {value}")
            if self.maximum is not None and value > self.maximum:
                raise ReportParameterError(f"{where} must be at most {self.maximum}, got {value}")
            return value
        if self.type == "interval":
            if not INTERVAL.match(text):
                raise ReportParameterError(
                    f"{where} must be a duration like '90 minutes', '6 hours' or '1 day 2 hours', got {raw!r}"
                )
            seconds = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
            total = sum(int(n) * seconds[unit.lower()] for n, unit in INTERVAL_PART.findall(text))
            if (
                total > MAX_INTERVAL_DAYS * 86400
            ):  # beyond it, timedelta overflows or now() - it leaves the calendar
                raise ReportParameterError(f"{where} must be at most {MAX_INTERVAL_DAYS} days, got {raw!r}")
            return dt.timedelta(seconds=total)
        if self.type == "date":
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                raise ReportParameterError(f"{where} must be a date YYYY-MM-DD, got {raw!r}") from None
        if len(raw) > MAX_TEXT or any(ord(ch) < 32 for ch in raw):
            raise ReportParameterError(f"{where} must be at most {MAX_TEXT} printable characters")
        return raw


class Report(NamedTuple):
    """A report file's header: its name, what it answers, its parameters."""

    name: str
    description: str
    params: tuple[Param, ...] = ()

    @property
    def path(self) -> str:
        return f"reports/{self.name}.sql"

    def bind(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every declared parameter with its value: given (str values converted), else the default."""
        values = dict(values or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(values) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise ReportParameterError(
                f"report {self.name}: unknown parameter {unknown[0]!r} (its parameters: {names})"
            )
        bound: dict[str, Any] = {}
        for p in self.params:
            if p.name not in values:
                bound[p.name] = p.default
            elif isinstance(values[p.name], str):
                bound[p.name] = p.convert(values[p.name], self.name)
            else:
                bound[p.name] = p.convert(str(values[p.name]), self.name)
        return bound


class Result:
    """The rows a report returned, with the parameters it ran with."""

    def __init__(
        self, report: Report, params: dict[str, Any], columns: list[str], rows: list[tuple] | None = None
    ) -> None:
        self.report = report
        self.params = params
        self.columns = columns
        self.rows = [] if rows is None else rows

    def __repr__(self) -> str:
        return f"Result({self.report.name!r}, {len(self.rows)} rows)"

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def parse_header(source: str, name: str) -> Report:
    """Read the `-- report:`, `-- description:` and `-- param:` lines at the top of a report file."""
    found_name = None
    description = ""
    params: list[Param] = []
    where = f"sql/reports/{name}.sql"
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            if stripped and not stripped.startswith("{%"):
                break
            continue
        match = HEADER.match(stripped)
        if match is None:
            continue
        key, value = match["key"], match["value"]
        if key == "report":
            found_name = value
        elif key == "description":
            description = value
        else:
            params.append(_parse_param(value, where))
    if found_name != name:
        raise ReportError(f"{where}: the header must begin with `-- report: {name}`")
    if len({p.name for p in params}) != len(params):
        raise ReportError(f"{where}: a parameter is declared twice")
    return Report(name=name, description=description, params=tuple(params))


def _parse_param(spec: str, where: str) -> Param:
    match = PARAM.match(spec)
    if match is None:
        raise ReportError(
            f"{where}: cannot read `-- param: {spec}` "
            "(expected: NAME integer|text|interval|date [default VALUE|none] [min N] [max N] [-- description])"
        )
    raw_default = match["default"]
    draft = Param(
        name=match["name"],
        type=match["type"],
        minimum=int(match["min"]) if match["min"] else None,
        maximum=int(match["max"]) if match["max"] else None,
        description=(match["description"] or "").strip(),
    )
    if raw_default is None or raw_default.strip().lower() == "none":
        return draft
    try:
        default = draft.convert(raw_default, where)
    except ReportParameterError as exc:
        raise ReportError(f"{where}: bad default: {exc}") from None
    return Param(
        draft.name, draft.type, default, raw_default.strip(), draft.minimum, draft.maximum, draft.description
    )


def available(project: Project) -> list[Report]:
    """Every report of the project, by name."""
    return in_folder(project.sql_dir)


def in_folder(sql_dir: Path) -> list[Report]:
    """Every report of sql_dir/reports/, by name."""
    folder = sql_dir / "reports"
    reports = []
    for path in sorted(folder.glob("*.sql")) if folder.is_dir() else []:
        if NAME.match(path.stem):
            reports.append(parse_header(path.read_text(encoding="utf-8"), path.stem))
    return reports


def get(project: Project, name: str) -> Report:
    """The report called `name`, or an error listing the ones there are."""
    path = project.sql_dir / "reports" / f"{name}.sql"
    if not NAME.match(name) or not path.is_file():
        names = ", ".join(r.name for r in available(project))
        raise ReportError(f"no report named {name!r} (reports: {names}; see `runner report list`)")
    return parse_header(path.read_text(encoding="utf-8"), name)


def run(
    conn: psycopg.Connection, project: Project, name: str, params: Mapping[str, Any] | None = None
) -> Result:
    """Run report `name` in a read-only transaction with its parameters bound (strings are converted)."""
    report = get(project, name)
    bound = report.bind(params)
    sql = project.render(report.path)
    from psycopg import errors as pg_errors  # here: `runner report list` starts without the driver

    try:
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            cursor = conn.execute(sql, bound)
            columns = [c.name for c in cursor.description or []]
            rows = cursor.fetchall()
    except (pg_errors.UndefinedTable, pg_errors.UndefinedFunction) as exc:
        what = (exc.diag.message_primary or str(exc)).strip()
        raise ProjectNotApplied(
            f"report {name}: {what}: the project is not applied to this database; run "
            "`runner apply` (as its owner) first, or check DATABASE_URL"
        ) from None
    return Result(report=report, params=bound, columns=columns, rows=rows)


def listing(found: list[Report], fmt: str = "table") -> str:
    """`runner report list`: each report, what it answers and its parameters; fmt "table" or "json"."""
    if fmt == "json":
        import json

        return json.dumps(
            [
                {
                    "name": r.name,
                    "description": r.description,
                    "params": [
                        {
                            "name": p.name,
                            "type": p.type,
                            "default": p.default_text,
                            "min": p.minimum,
                            "max": p.maximum,
                            "description": p.description,
                        }
                        for p in r.params
                    ],
                }
                for r in found
            ],
            indent=2,
        )
    width = max((len(r.name) for r in found), default=0)
    lines = []
    for r in found:
        params = ", ".join(f"{p.name}={p.default_text}" for p in r.params)
        lines.append(f"{r.name.ljust(width)}  {r.description}" + (f"  [{params}]" if params else ""))
    return "\n".join(lines)


# -- output ------------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    """A value as people and CSV readers expect it; exact (Decimal and timestamps keep every digit)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value.total_seconds())
    return str(value)


def _json_value(value: Any) -> Any:
    """JSON: integers and floats are numbers; NUMERIC values are strings, so no digit is lost."""
    import uuid
    from decimal import Decimal  # here and below: output only; `runner report list` starts without them

    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):
        return value
    return _text(value)


def to_json(result: Result) -> str:
    import json

    rows = [{c: _json_value(v) for c, v in zip(result.columns, row, strict=True)} for row in result.rows]
    return json.dumps(rows, indent=2)


def to_csv(result: Result) -> str:
    import csv

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow([_text(v) for v in row])
    return out.getvalue()


def to_table(result: Result) -> str:
    """Aligned columns for a person: numbers right-aligned, NULL shown as a blank, a row count below."""
    from decimal import Decimal

    if not result.columns:
        return "(no columns)"

    def cell(value: Any) -> str:
        if isinstance(value, dt.datetime):
            return value.isoformat(sep=" ", timespec="seconds")
        return _text(value)

    cells = [[cell(v) for v in row] for row in result.rows]
    numeric = [
        all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in result.rows)
        and any(row[i] is not None for row in result.rows)
        for i in range(len(result.columns))
    ]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(result.columns)]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    lines = [line(result.columns), "  ".join("-" * w for w in widths)]
    lines += [line(r) for r in cells]
    lines.append(f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})")
    return "\n".join(lines)


def render(result: Result, fmt: str) -> str:
    """The result in one of FORMATS."""
    if fmt == "json":
        return to_json(result)
    if fmt == "csv":
        return to_csv(result).rstrip("\n")
    return to_table(result)
