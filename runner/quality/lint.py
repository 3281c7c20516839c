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
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import ConfigError, LintFailed, ProjectError, RunnerError
from runner.project import CONFIG_FILE, VERSIONED_NAME, Project
from runner.quality.findings import Finding, LintResult
from runner.quality.plpgsql import check_functions

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

BASELINE = "lint-baseline.toml"
DEFAULT_PG_VERSION = "14"  # the oldest PostgreSQL the project supports: squawk's advice must hold there
TEMPLATE_FOLDERS = ("tables", "functions", "reports", "tests")
ACK_LINE = re.compile(r"^\s*--\s*lint\s*:\s*(?P<rest>.*?)\s*$")
ACK = re.compile(r"^ignore\s+(?P<rules>[a-z0-9_-]+(?:\s*,\s*[a-z0-9_-]+)*)\s+because\s+(?P<reason>\S.*)$")
SQUAWK_IGNORE = re.compile(r"^\s*--\s*squawk-ignore", re.IGNORECASE)


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
