"""`runner lint`: the SQL project checked before it reaches a database.

- **Jinja**: every template of sql/ (tables, functions, reports, tests) renders; an error names the file
  and line. The data tests' and reports' headers and the project's file names and directives are read too.
- **squawk** (the `squawk-cli` package): every versioned file's *rendered* SQL, for DDL that takes locks on
  existing tables (an index built without CONCURRENTLY, a constraint validated under an exclusive lock, a
  column type change that rewrites the table, ...). Transactional files are checked as run in a
  transaction, `-- runner: no-transaction` files as not.
- **plpgsql_check**, when the server has it: the project is applied to a scratch database on that server
  (created and dropped here) and every PL/pgSQL function body is checked, so a reference to a missing
  column fails here, not when its branch first runs in production. When the server lacks the extension
  (or the privileges), the result says so and nothing is claimed about function bodies.

A finding may be acknowledged, always with a reason:

- in the file: ``-- lint: ignore <rule>[, <rule>] because <reason>`` (any line of the file's source);
- for the whole project: ``[lint.exclude]`` in sql/project.toml, ``<rule> = "<reason>"``;
- for versioned files applied before `runner lint` existed (never edited again: that is drift):
  sql/lint-baseline.toml, ``["tables/V003__x.sql"]`` then ``<rule> = "<reason>"``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError, LintFailed, ProjectError, RunnerError
from runner.project import CONFIG_FILE, VERSIONED_NAME, Project

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

BASELINE = "lint-baseline.toml"
DEFAULT_PG_VERSION = "14"  # the oldest PostgreSQL the project supports: squawk's advice must hold there
TEMPLATE_FOLDERS = ("tables", "functions", "reports", "tests")
ACK_LINE = re.compile(r"^\s*--\s*lint\s*:\s*(?P<rest>.*?)\s*$")
ACK = re.compile(r"^ignore\s+(?P<rules>[a-z0-9_-]+(?:\s*,\s*[a-z0-9_-]+)*)\s+because\s+(?P<reason>\S.*)$")
SQUAWK_IGNORE = re.compile(r"^\s*--\s*squawk-ignore", re.IGNORECASE)
FUNCTION_NAME = re.compile(
    r"\bFUNCTION\s+(?:[a-z_][a-z0-9_]*\.)?(?P<name>[a-z_][a-z0-9_]*)\s*\(", re.IGNORECASE
)
PLPGSQL_CHECK = "plpgsql-check"


@dataclass(frozen=True)
class Finding:
    """One problem: which tool found it, where, under which rule, and what to do."""

    tool: str  # jinja | project | squawk | plpgsql_check | apply | lint
    file: str  # sql/... (or the project configuration)
    line: int | None
    rule: str
    message: str
    level: str = "error"
    help: str | None = None
    acknowledged: str | None = None  # the reason, when acknowledged

    def text(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        tail = f"  ({self.help})" if self.help else ""
        return f"{where}: {self.rule}: {self.message}{tail}"


@dataclass
class LintResult:
    """Every finding, the acknowledged ones apart, what was checked and what could not be."""

    findings: list[Finding] = field(default_factory=list)
    acknowledged: list[Finding] = field(default_factory=list)
    templates: int = 0
    squawked: int = 0
    functions: int = 0
    plpgsql_check: str = "off"  # checked | unavailable | skipped | off
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "findings": [asdict(f) for f in self.findings],
            "acknowledged": [asdict(f) for f in self.acknowledged],
            "templates": self.templates,
            "squawked": self.squawked,
            "functions": self.functions,
            "plpgsql_check": self.plpgsql_check,
            "notes": self.notes,
        }

    def to_text(self) -> str:
        lines = [f"{f.tool:<13} {f.text()}" for f in self.findings]
        lines += [f"note          {n}" for n in self.notes]
        functions = (
            f"{self.functions} function bodies checked by plpgsql_check"
            if self.plpgsql_check == "checked"
            else f"plpgsql_check {self.plpgsql_check}"
        )
        lines.append(
            f"{len(self.findings)} finding(s), {len(self.acknowledged)} acknowledged; {self.templates} "
            f"templates rendered, {self.squawked} versioned files through squawk, {functions}"
        )
        return "\n".join(lines)


# -- the whole run -----------------------------------------------------------------------------------
def run(project: Project, url: str | None = None, files: Sequence[str] = ()) -> LintResult:
    """Lint the project: templates, squawk on versioned files, plpgsql_check on a scratch database of the
    server at `url` (None: no database part). `files` limits the template and squawk checks to those files."""
    result = LintResult()
    wanted = {project.find(f) for f in files}
    rendered = render_templates(project, result, wanted)
    if not wanted:
        _check_project(project, result)
    squawk(project, rendered, result)
    if url is None:
        result.notes.append("plpgsql_check: not run (--no-db): function bodies were not checked")
    elif not wanted or any(name.startswith("functions/") for name in wanted):
        check_functions(project, url, result)
    _acknowledge(project, result)
    return result


def render_templates(project: Project, result: LintResult, wanted: set[str] | None = None) -> dict[str, str]:
    """Render every template of sql/ (or those `wanted`); a Jinja error is a finding with file and line."""
    import jinja2

    env = project._environment()
    rendered: dict[str, str] = {}
    for folder in TEMPLATE_FOLDERS:
        base = project.sql_dir / folder
        for path in sorted(base.glob("*.sql")) if base.is_dir() else []:
            rel = f"{folder}/{path.name}"
            if wanted and rel not in wanted:
                continue
            result.templates += 1
            try:
                rendered[rel] = env.get_template(rel).render()
            except jinja2.TemplateSyntaxError as exc:
                result.findings.append(
                    Finding(
                        "jinja", f"sql/{exc.name or rel}", exc.lineno, "template", exc.message or str(exc)
                    )
                )
            except jinja2.TemplateError as exc:
                where, line = _template_line(exc, project, rel)
                result.findings.append(
                    Finding(
                        "jinja",
                        where,
                        line,
                        "template",
                        exc.message or str(exc),
                        help=f"define it in sql/{CONFIG_FILE} or fix the template"
                        if isinstance(exc, jinja2.UndefinedError)
                        else None,
                    )
                )
    return rendered


def _template_line(exc: BaseException, project: Project, rel: str) -> tuple[str, int | None]:
    """The template file and line an error was raised from (Jinja maps its frames back to templates)."""
    found: tuple[str, int | None] = (f"sql/{rel}", None)
    sql_dir = str(project.sql_dir.resolve())
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if filename.endswith(".sql") and filename.startswith(sql_dir):
            found = ("sql/" + Path(filename).resolve().relative_to(sql_dir).as_posix(), lineno)
    return found


def _check_project(project: Project, result: LintResult) -> None:
    """What apply, `runner test` and `runner report` would refuse: names, directives, dependencies,
    the data tests' and the reports' headers."""
    from runner.quality import datatests
    from runner.reporting import reports

    templated = {f.file for f in result.findings}
    for what, check in (
        ("project", project.files),
        ("data tests", lambda: datatests.load(project)),
        ("reports", lambda: reports.available(project)),
    ):
        try:
            check()
        except (ProjectError, ConfigError, RunnerError) as exc:
            message = str(exc)
            if any(message.startswith(f) for f in templated):
                continue  # the template error already reported
            file, _, rest = message.partition(": ")
            if not file.startswith("sql/"):
                file, rest = f"sql/{CONFIG_FILE}" if what == "data tests" else "sql/", message
            result.findings.append(Finding("project", file, None, what.replace(" ", "-"), rest))


# -- squawk ------------------------------------------------------------------------------------------
def squawk_binary() -> str:
    """The squawk executable of this Python environment (pip's scripts folder), else of PATH."""
    names = ["squawk.exe", "squawk"] if sys.platform == "win32" else ["squawk"]
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        for name in names:
            if (folder / name).is_file():
                return str(folder / name)
    found = shutil.which("squawk")
    if found is None:
        raise LintFailed(
            "squawk is not installed: pip install 'checkout-sessions[lint]' (the squawk-cli package)"
        )
    return found


def squawk(project: Project, rendered: dict[str, str], result: LintResult) -> None:
    """Run squawk over the rendered versioned files; its findings go into `result`."""
    settings = project.config.get("lint", {})
    pg_version = str(settings.get("pg_version", DEFAULT_PG_VERSION))
    excluded = sorted(settings.get("exclude", {}))
    versioned = {rel: sql for rel, sql in rendered.items() if rel.startswith("tables/")}
    if not versioned:
        return
    binary = squawk_binary()
    with tempfile.TemporaryDirectory(prefix="runner-lint-") as tmp:
        groups: dict[bool, list[str]] = {True: [], False: []}
        for rel, sql in versioned.items():
            (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / rel).write_text(sql, encoding="utf-8")
            source = (project.sql_dir / rel).read_text(encoding="utf-8")
            transactional = not re.search(r"^--\s*runner\s*:.*no-transaction", source, re.MULTILINE)
            groups[transactional].append(rel)
        for transactional, rels in groups.items():
            if not rels:
                continue
            command = [
                binary,
                "--reporter",
                "json",
                f"--pg-version={pg_version}",
                "--assume-in-transaction" if transactional else "--no-assume-in-transaction",
            ]
            if excluded:
                command.append("--exclude=" + ",".join(excluded))
            done = subprocess.run(command + rels, cwd=tmp, capture_output=True, text=True, check=False)
            try:
                reported = json.loads(done.stdout or "[]")
            except json.JSONDecodeError:
                raise LintFailed(
                    f"squawk failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[:500]}"
                ) from None
            result.squawked += len(rels)
            for item in reported:
                rel = item["file"]
                line = int(item.get("line", 0)) + 1  # squawk's JSON lines count from 0
                text_lines = versioned.get(rel, "").splitlines()
                statement = text_lines[line - 1].strip() if 0 < line <= len(text_lines) else ""
                result.findings.append(
                    Finding(
                        "squawk",
                        f"sql/{rel}",
                        line,
                        item["rule_name"],
                        f"{item['message']}"
                        + (f" [rendered line {line}: {statement[:80]}]" if statement else ""),
                        level=str(item.get("level", "warning")).lower(),
                        help=item.get("help"),
                    )
                )


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
                f"({_first_line(exc)}): function bodies were NOT checked"
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
                        f"plpgsql_check: skipped: CREATE EXTENSION failed ({_first_line(exc)}): "
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


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# -- acknowledgements --------------------------------------------------------------------------------
def acknowledgements(project: Project) -> tuple[dict[str, dict[str, str]], list[Finding]]:
    """file ("sql/...") -> {rule: reason} from the files' `-- lint: ignore` lines and the baseline; and
    the malformed acknowledgements, as findings."""
    acks: dict[str, dict[str, str]] = {}
    problems: list[Finding] = []
    for folder in ("tables", "functions"):
        base = project.sql_dir / folder
        for path in sorted(base.glob("*.sql")) if base.is_dir() else []:
            where = f"sql/{folder}/{path.name}"
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if SQUAWK_IGNORE.match(line):
                    problems.append(
                        Finding(
                            "lint",
                            where,
                            number,
                            "acknowledgement",
                            "squawk-ignore has no reason",
                            help="write `-- lint: ignore <rule> because <reason>` instead",
                        )
                    )
                    continue
                marker = ACK_LINE.match(line)
                if marker is None:
                    continue
                ack = ACK.match(marker["rest"])
                if ack is None:
                    problems.append(
                        Finding(
                            "lint",
                            where,
                            number,
                            "acknowledgement",
                            f"cannot read `-- lint: {marker['rest']}`",
                            help="write `-- lint: ignore <rule>[, <rule>] because <reason>`",
                        )
                    )
                    continue
                for rule in re.split(r"\s*,\s*", ack["rules"]):
                    acks.setdefault(where, {})[rule] = ack["reason"]
    path = project.sql_dir / BASELINE
    if path.is_file():
        try:
            baseline = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"sql/{BASELINE}: {exc}") from None
        for rel, rules in baseline.items():
            if not isinstance(rules, dict) or not all(
                isinstance(r, str) and r.strip() for r in rules.values()
            ):
                raise ConfigError(f'sql/{BASELINE}: ["{rel}"] must map each rule to its reason')
            if not VERSIONED_NAME.match(rel.rsplit("/", 1)[-1]):
                raise ConfigError(
                    f"sql/{BASELINE}: {rel!r} is not a versioned file (the baseline is for "
                    "applied sql/tables files; acknowledge in the file itself otherwise)"
                )
            for rule, reason in rules.items():
                acks.setdefault(f"sql/{rel}", {}).setdefault(rule, reason)
    return acks, problems


def _acknowledge(project: Project, result: LintResult) -> None:
    acks, problems = acknowledgements(project)
    kept: list[Finding] = []
    for finding in result.findings:
        reason = acks.get(finding.file, {}).get(finding.rule)
        if reason and finding.tool in ("squawk", "plpgsql_check"):
            result.acknowledged.append(Finding(**{**asdict(finding), "acknowledged": reason}))
        else:
            kept.append(finding)
    result.findings = kept + problems
    for rule, reason in project.config.get("lint", {}).get("exclude", {}).items():
        if not isinstance(reason, str) or not reason.strip():
            result.findings.append(
                Finding(
                    "lint",
                    f"sql/{CONFIG_FILE}",
                    None,
                    "acknowledgement",
                    f'[lint.exclude] {rule} needs a reason: {rule} = "why"',
                )
            )


def lint(
    project: Project,
    url: str | None,
    files: Sequence[str] = (),
    on_result: Callable[[LintResult], None] | None = None,
) -> LintResult:
    """run(), then LintFailed when anything was found (after `on_result` has shown the findings)."""
    result = run(project, url, files)
    if on_result is not None:
        on_result(result)
    if not result.ok:
        tools = sorted({f.tool for f in result.findings})
        raise LintFailed(
            f"{len(result.findings)} lint finding(s) ({', '.join(tools)}): fix them, or acknowledge "
            "one with `-- lint: ignore <rule> because <reason>` in its file"
        )
    return result
