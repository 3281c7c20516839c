"""The reference's queries, one copy for the tests and the benchmarks.

docs/reference/queries.sql holds every SQL block of the reference document except its CREATE TABLE,
verbatim (tests/sql/test_reference_queries.py checks it against the document and runs each one).
"""

from __future__ import annotations

from pathlib import Path

QUERIES = Path(__file__).resolve().parents[1] / "docs" / "reference" / "queries.sql"


def statements() -> list[str]:
    """Every statement of the file, in order, each with the comment lines above it."""
    from runner.migrate import split_statements

    return split_statements(QUERIES.read_text())


def query(fragment: str) -> str:
    """The one statement containing `fragment` (its title comment, or a phrase only it has), without its `;`."""
    found = [s for s in statements() if fragment in s]
    if len(found) != 1:
        raise LookupError(f"{len(found)} reference statements contain {fragment!r}; expected one")
    return found[0].rstrip().removesuffix(";")
