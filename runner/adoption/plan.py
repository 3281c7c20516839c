"""What an adoption would do: the shapes compared, the steps, the rows breaking each rule; as text or JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Phases, in the order execute.py runs them.
PHASES = {
    2: "columns, defaults, comments, names",
    4: "constraints added NOT VALID (enforced for new rows at once)",
    6: "constraints validated (no lock that stops reads or writes), NOT NULL set",
    7: "indexes built CONCURRENTLY, swapped in; unique constraints on them",
    8: "left by a stopped adoption: the project's constraints validated, its indexes built CONCURRENTLY",
    9: "after the project's files: defaults it does not have dropped (its triggers fill those columns now)",
}


@dataclass
class Column:
    name: str
    type: str
    not_null: bool
    default: str | None
    identity: str = ""
    comment: str | None = None
    sequence: str | None = None


@dataclass
class Constraint:
    name: str
    type: str  # c check, f foreign key, u unique, p primary key, x exclusion
    definition: str
    validated: bool = True
    index_definition: str | None = None


@dataclass
class Index:
    name: str
    definition: str  # normalised: no name, no schema (target.normalise_index)
    valid: bool = True


@dataclass
class TableShape:
    name: str
    comment: str | None = None
    columns: dict[str, Column] = field(default_factory=dict)
    constraints: dict[str, Constraint] = field(default_factory=dict)
    indexes: dict[str, Index] = field(default_factory=dict)
    triggers: dict[str, str] = field(default_factory=dict)  # name -> function


@dataclass
class Step:
    """One change to the shape of a table: statements run together in one short transaction under the
    lock timeout (kind "ddl"), or outside any transaction ("concurrent", "index"), or a special one."""

    phase: int
    table: str
    description: str
    sql: list[str]
    kind: str = "ddl"  # ddl | concurrent | index | identity
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class FunctionDrop:
    name: str
    arguments: str
    result: str
    file: str  # the function file that creates ours; the drop runs in its transaction
    executors: list[str] = field(default_factory=list)  # roles granted EXECUTE on it: granted on ours too


@dataclass
class RuleCount:
    name: str
    table: str
    description: str
    resolution: str
    rows: int
    sample_ids: list[str]
    error: str | None = None


@dataclass
class Plan:
    schema: str
    history: str = "partial"  # "complete": every table file is recorded as applied
    adopt_versions: list[str] = field(default_factory=list)  # upgraded in place, then recorded
    create_versions: list[str] = field(default_factory=list)  # run (their tables are absent)
    adopted_tables: list[str] = field(default_factory=list)
    matching: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    team_objects: list[dict[str, str]] = field(default_factory=list)
    function_drops: list[FunctionDrop] = field(default_factory=list)
    rules: list[RuleCount] = field(default_factory=list)
    pending_files: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    # the shape a fresh apply gives every table (target.Target.final), for the last step; not printed
    target_final: dict[str, TableShape] | None = field(default=None, repr=False, compare=False)

    @property
    def dirty_rows(self) -> int:
        return sum(r.rows for r in self.rules)

    @property
    def nothing_to_do(self) -> bool:
        return not (
            self.adopt_versions
            or self.create_versions
            or self.steps
            or self.function_drops
            or self.dirty_rows
            or self.pending_files
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("target_final", None)
        data["nothing_to_do"] = self.nothing_to_do
        data["dirty_rows"] = self.dirty_rows
        for step in data["steps"]:
            step.pop("args", None)
        return data

    def to_text(self) -> str:
        lines: list[str] = []
        if self.nothing_to_do and not self.blockers:
            return "Nothing to adopt: the database is what `runner apply` builds, and no row breaks a rule."
        if self.adopt_versions:
            lines.append(
                f"Tables to adopt in place ({', '.join(self.adopted_tables)}), then record as applied: "
                + ", ".join(f"sql/{v}" for v in self.adopt_versions)
            )
            if self.matching:
                lines.append(f"  already matching: {', '.join(self.matching)}")
        if self.create_versions:
            lines.append(
                "Absent, created as `runner apply` would: "
                + ", ".join(f"sql/{v}" for v in self.create_versions)
            )
        for phase, title in PHASES.items():
            steps = [s for s in self.steps if s.phase == phase]
            if steps:
                lines.append(f"Phase: {title}")
                lines += [f"  {s.table}: {s.description}" for s in steps]
        if self.team_objects:
            lines.append("The team's own objects (kept, working):")
            lines += [f"  {o['kind']} {o['name']}: {o['detail']}" for o in self.team_objects]
        if self.function_drops:
            lines.append(
                "Functions replaced by the project's (dropped in the transaction that creates ours):"
            )
            lines += [
                f"  {d.name}({d.arguments}) returns {d.result}  (sql/{d.file})" for d in self.function_drops
            ]
        dirty = [r for r in self.rules if r.rows or r.error]
        lines.append(
            f"Rows breaking the project's rules: {self.dirty_rows}"
            + ("" if dirty else " (every rule passes)")
        )
        for r in dirty:
            if r.error:
                lines.append(f"  {r.name}: not checkable yet ({r.error}); checked again during adoption")
                continue
            more = ", ..." if r.rows > len(r.sample_ids) else ""
            lines.append(f"  {r.name}: {r.rows} row(s) of {r.table} ({', '.join(r.sample_ids)}{more})")
            lines.append(f"      -> {r.resolution}")
        if self.pending_files:
            lines.append(
                f"Then applied as `runner apply` does: {len(self.pending_files)} file(s) "
                f"({', '.join(self.pending_files[:4])}{', ...' if len(self.pending_files) > 4 else ''})"
            )
        if self.blockers:
            lines.append("Cannot adopt until these are fixed by hand:")
            lines += [f"  {b}" for b in self.blockers]
        return "\n".join(lines)
