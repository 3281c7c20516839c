"""The project's later versioned files, run by an adoption on tables that already hold the app's rows.

`runner apply` runs a versioned file as written, in one transaction: on tables it created itself, empty
or small, a `CREATE INDEX` or an `ADD CONSTRAINT ... CHECK` costs nothing. On the reference's tables, with
a million rows, each would hold the app's writes back for the whole scan. So adoption runs such a file in
two parts: the file in one transaction with its history row, where an index on an adopted table is left
out and a CHECK or FOREIGN KEY is added NOT VALID (enforced for new rows at once), then, outside any
transaction, each constraint validated and each index built CONCURRENTLY (neither stops reads or writes).

An adoption stopped between the two parts has recorded the file; `deferred_left()` finds what its
second part did not finish (a constraint still NOT VALID, an index missing or invalid), and the next
adoption finishes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from runner import migrate
from runner.adoption.plan import Step, TableShape
from runner.project import SqlFile

LEADING_COMMENTS = re.compile(r"^(?:\s*--[^\n]*\n)*\s*")
CREATE_INDEX = re.compile(
    r"^CREATE\s+(?P<unique>UNIQUE\s+)?INDEX\s+(?!CONCURRENTLY\b)(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>\w+)\s+"
    r"ON\s+(?:ONLY\s+)?(?P<table>[\w.\"]+)",
    re.IGNORECASE,
)
CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([\w.\"]+)", re.IGNORECASE)
ALTER_TABLE = re.compile(
    r"^ALTER\s+TABLE\s+(?:ONLY\s+)?(?:IF\s+EXISTS\s+)?(?P<table>[\w.\"]+)", re.IGNORECASE
)
ADD_CONSTRAINT = re.compile(
    r"ADD\s+CONSTRAINT\s+(?P<name>\w+)\s+(?P<kind>CHECK|FOREIGN\s+KEY)\b", re.IGNORECASE
)


@dataclass
class OnlineFile:
    """A versioned file split for adoption: `transaction` runs with its history row, `after` outside."""

    transaction: str
    after: list[Step] = field(default_factory=list)


def _table(name: str) -> str:
    return name.rsplit(".", 1)[-1].strip('"')


def _clause_end(text: str, start: int) -> int:
    """Where the clause starting at `start` ends: the next comma or semicolon outside parentheses and
    quotes, or the end of the statement (trailing blanks excluded)."""
    depth, quote, i = 0, None, start
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c in ",;" and depth == 0:
            break
        i += 1
    while i > start and text[i - 1].isspace():
        i -= 1
    return i


def _not_valid(statement: str, schema: str, table: str, after: list[Step]) -> str:
    """Each ADD CONSTRAINT ... CHECK / FOREIGN KEY of an ALTER TABLE made NOT VALID, its VALIDATE deferred."""
    out, pos = [], 0
    for match in ADD_CONSTRAINT.finditer(statement):
        end = _clause_end(statement, match.end())
        if re.search(r"\bNOT\s+VALID$", statement[match.start() : end], re.IGNORECASE):
            continue
        out.append(statement[pos:end] + " NOT VALID")
        pos = end
        after.append(
            Step(
                8,
                table,
                f"validate {match['name']} (added NOT VALID by the file)",
                [f"ALTER TABLE {schema}.{table} VALIDATE CONSTRAINT {match['name']}"],
                kind="concurrent",
                args={"constraint": match["name"]},
            )
        )
    out.append(statement[pos:])
    return "".join(out)


def split(f: SqlFile, schema: str, tables: set[str]) -> OnlineFile | None:
    """The file in two parts when it indexes or constrains one of `tables`; None when it runs as written."""
    if not f.transactional:
        return None
    kept: list[str] = []
    after: list[Step] = []
    for statement in migrate.split_statements(f.rendered):
        body = LEADING_COMMENTS.sub("", statement)
        index = CREATE_INDEX.match(body)
        if index and _table(index["table"]) in tables:
            table = _table(index["table"])
            sql = re.sub(
                r"^CREATE\s+(UNIQUE\s+)?INDEX\s+(IF\s+NOT\s+EXISTS\s+)?",
                lambda m: f"CREATE {m[1] or ''}INDEX CONCURRENTLY {m[2] or ''}",
                body.rstrip().rstrip(";"),
                flags=re.IGNORECASE,
            )
            after.append(
                Step(
                    8,
                    table,
                    f"index {index['name']} (built CONCURRENTLY)",
                    [sql],
                    kind="index",
                    args={"name": index["name"], "drop_first": True},
                )
            )
            continue
        alter = ALTER_TABLE.match(body)
        if alter and _table(alter["table"]) in tables and ADD_CONSTRAINT.search(body):
            statement = _not_valid(statement, schema, _table(alter["table"]), after)
        kept.append(statement)
    if not after:
        return None
    return OnlineFile(transaction="\n\n".join(kept), after=after)


def deferred_left(
    files: list[SqlFile],
    done: set[str],
    schema: str,
    final: dict[str, TableShape],
    live: dict[str, TableShape],
) -> list[Step]:
    """What the second part of recorded files left undone (an adoption stopped after their transaction):
    constraints a fresh apply has validated that are NOT VALID here, its indexes missing or invalid here."""
    steps: list[Step] = []
    for f in files:
        if f.name not in done:
            continue
        # A file's indexes on a table it creates itself were built with it (the adopted tables' own files
        # are compared shape by shape instead, runner/adoption/diff.py).
        created = {_table(t) for t in CREATE_TABLE.findall(f.rendered)}
        online = split(f, schema, set(final) - created)
        for step in online.after if online else []:
            want, have = final.get(step.table), live.get(step.table)
            if want is None or have is None:
                continue
            if step.kind == "index":
                name = step.args["name"]
                if name in want.indexes and (name not in have.indexes or not have.indexes[name].valid):
                    steps.append(step)
            else:
                name = step.args["constraint"]
                ours, theirs = want.constraints.get(name), have.constraints.get(name)
                if ours is not None and ours.validated and theirs is not None and not theirs.validated:
                    steps.append(step)
    return steps
