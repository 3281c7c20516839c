"""`runner demo`: a realistic quarter of synthetic checkouts, so reports, doctor, dashboard and docs show
something on the first day.

Users and their checkout sessions come from the benchmarks' generator (runner/quality/generator.py: plans
weighted over the catalogue, several sessions per user, conversions, abandonment, retries); what the service
and the jobs would have left behind — Stripe's webhook events, the verification and reminder emails, the
errors support would find, the job runs of every schedule — from runner/quality/sql/demo_history.sql.
Deterministic: a seed and a `now` give the same rows every time.

It writes only into an empty database (or one it was asked to empty first), and the CLI refuses any
database but the embedded default unless told `--yes`: synthetic customers in a real database would be a
mess nobody can tell apart from real ones.
"""

from __future__ import annotations

import importlib.resources
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from runner.errors import DemoRefused
from runner.locks import DEMO_LOCK, advisory_lock
from runner.quality import generator

if TYPE_CHECKING:
    import psycopg

    from runner.project import Project

DAYS = 90  # a quarter
DEFAULT_SESSIONS = 6_000
DEFAULT_SEED = 1
# What the demo writes, children first (TRUNCATE of --reset; the row counts it reports).
DATA_TABLES = (
    "webhook_events",
    "email_outbox",
    "error_logs",
    "job_runs",
    "payment_checkout_sessions_archive",
    "payment_checkout_sessions",
    "users",
)
STEP = re.compile(r"^-- step: (?P<name>.+)$", re.MULTILINE)


@dataclass
class DemoResult:
    """What the demo wrote."""

    seed: int
    days: int
    users: int
    sessions: int
    by_status: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 2)
        return data

    def summary(self) -> str:
        statuses = ", ".join(f"{n:,} {s}" for s, n in sorted(self.by_status.items(), key=lambda kv: -kv[1]))
        extra = ", ".join(
            f"{n:,} {t}"
            for t, n in self.rows.items()
            if t not in ("users", "payment_checkout_sessions") and n
        )
        return (
            f"Demo data (seed {self.seed}): {self.users:,} users, {self.sessions:,} checkout sessions over "
            f"{self.days} days ({statuses}); {extra}; {self.seconds:.1f}s."
        )


def check_target(*, embedded: bool, yes: bool, where: str) -> None:
    """Refuse a database other than the embedded default unless the user said --yes."""
    if not embedded and not yes:
        raise DemoRefused(
            f"runner demo writes synthetic customers and payments, and {where} is not the embedded default "
            "database; pass --yes if this database is really meant for demo data"
        )


def row_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Rows of each demo table that exists (estimates are not enough: one row means not empty)."""
    counts = {}
    for table in DATA_TABLES:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None:
            counts[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return counts


def reset(conn: psycopg.Connection) -> None:
    """Empty the data tables (not the plan catalogue, not the history) and the rollup."""
    present = [
        t for t in DATA_TABLES if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0] is not None
    ]
    with conn.transaction():
        if present:
            # CASCADE: tables other features add that reference users or sessions empty with them.
            conn.execute(f"TRUNCATE {', '.join(present)} CASCADE")
        if conn.execute("SELECT to_regproc('rebuild_checkout_session_rollup')").fetchone()[0] is not None:
            conn.execute("SELECT rebuild_checkout_session_rollup()")


def history_steps() -> list[tuple[str, str]]:
    """(name, statement) of each `-- step:` of the packaged demo_history.sql, in order."""
    text = (importlib.resources.files("runner.quality") / "sql" / "demo_history.sql").read_text(
        encoding="utf-8"
    )
    marks = list(STEP.finditer(text))
    steps = []
    for i, mark in enumerate(marks):
        body = text[mark.end() : marks[i + 1].start() if i + 1 < len(marks) else len(text)]
        # Comment lines go: their prose may hold a % that psycopg would read as a placeholder.
        statement = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--"))
        steps.append((mark["name"].strip(), statement.strip()))
    return steps


def fill(
    conn: psycopg.Connection,
    *,
    seed: int = DEFAULT_SEED,
    sessions: int = DEFAULT_SESSIONS,
    now: Any = None,
    empty_first: bool = False,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Write the demo quarter into the applied, empty database of `conn` (autocommit); `empty_first`
    empties the data tables before. Holds the demo lock throughout: a second demo at the same time fails
    at once (LockTimeout, exit 5) instead of mixing its rows in."""
    if sessions < 1:
        raise DemoRefused(f"--sessions must be at least 1, got {sessions}")
    with advisory_lock(conn, DEMO_LOCK, 0, "runner demo"):
        if empty_first:
            (progress or (lambda _message: None))("demo: emptying the data tables (--reset)")
            reset(conn)
        return _fill(conn, seed, sessions, now, progress)


def _fill(
    conn: psycopg.Connection, seed: int, sessions: int, now: Any, progress: Callable[[str], None] | None
) -> DemoResult:
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    filled = {t: n for t, n in row_counts(conn).items() if n}
    if filled:
        what = ", ".join(f"{n:,} rows in {t}" for t, n in filled.items())
        raise DemoRefused(
            f"the database is not empty ({what}); runner demo fills an empty one "
            "(`runner demo --reset` empties the data tables first)"
        )
    now = conn.execute("SELECT coalesce(%s::timestamptz, now())", (now,)).fetchone()[0]
    say(
        f"demo: {sessions:,} checkout sessions over the {DAYS} days before {now:%Y-%m-%d %H:%M %Z} (seed {seed})"
    )
    generated = generator.generate(
        conn, sessions, seed=seed, now=now, days=DAYS, stale_pending=0.0, rebuild_indexes=False, progress=say
    )
    params = {"seed": seed, "now": now, "days": DAYS}
    with conn.transaction():
        for name, statement in history_steps():
            t = time.perf_counter()
            rows = conn.execute(statement, params if "%(" in statement else None).rowcount
            if rows >= 0:  # -1: not an INSERT (the helpers)
                say(f"  {name}: {rows:,} rows ({time.perf_counter() - t:.1f}s)")
    while conn.execute("SELECT fold_checkout_session_rollup(100000)").fetchone()[0]:
        pass
    for table in DATA_TABLES:
        conn.execute(f"VACUUM (ANALYZE) {table}")
    return DemoResult(
        seed=seed,
        days=DAYS,
        users=generated.users,
        sessions=generated.sessions,
        by_status=generated.by_status,
        rows=row_counts(conn),
        seconds=time.perf_counter() - started,
    )


def run(
    connect: Callable[[], psycopg.Connection],
    project: Project,
    *,
    seed: int = DEFAULT_SEED,
    sessions: int = DEFAULT_SESSIONS,
    empty_first: bool = False,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """`runner demo`: apply the project (pending files only), optionally empty the data, fill the quarter."""
    from runner import migrate

    say = progress or (lambda _message: None)
    applied = migrate.apply(connect, project, on_step=lambda f, action: say(f"{action:<8} {f.label}"))
    if applied.steps:
        say(f"applied {len(applied.steps)} file(s) first")
    conn = connect()
    try:
        return fill(conn, seed=seed, sessions=sessions, empty_first=empty_first, progress=say)
    finally:
        conn.close()
