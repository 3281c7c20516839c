"""What `runner lint` finds: one Finding per problem, and the LintResult of a run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
