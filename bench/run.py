"""The benchmark suite in one command: every bench/bench_*.py script, the data generator at each size and
the partitioning prototype, one table, one JSON file.

    python -m bench [--quick] [--sizes 100k,1M,10M] [--database-url URL] [--only apply,cli] [--out PATH]

Each script runs as its own process under the gather contract of bench/README.md (`--quick`,
`--database-url URL`, `--json PATH`), so a benchmark added by another issue joins the run by being named
bench/bench_<name>.py. Results go to bench/results/<date>.json unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.generate import generate, parse_size

# Ours first, in the order of the issue; others' scripts after, alphabetically.
ORDER = ["apply", "cli", "sessions"]
FIELDS = {
    "name",
    "group",
    "median",
    "min",
    "max",
    "runs",
    "unit",
    "baseline",
    "baseline_median",
    "ratio",
    "aim",
    "aim_met",
    "note",
    "params",
}


def discover() -> dict[str, Path]:
    found = {p.stem.removeprefix("bench_"): p for p in sorted(common.BENCH_DIR.glob("bench_*.py"))}
    return dict(
        sorted(found.items(), key=lambda kv: (ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER), kv[0]))
    )


def normalise(item: dict, group: str) -> common.Result:
    """A result of any bench script (our Result fields, or the contract's minimal ones) as a Result."""
    median = item.get("median", item.get("median_ms"))
    spread = item.get("spread")
    low, high = item.get("min", item.get("min_ms")), item.get("max", item.get("max_ms"))
    if (low is None or high is None) and isinstance(spread, str) and "-" in spread.lstrip("-"):
        a, _, b = spread.lstrip("-").partition("-")
        try:
            low, high = float(a), float(b)
        except ValueError:
            pass
    elif (low is None or high is None) and isinstance(spread, list | tuple) and len(spread) == 2:
        low, high = spread
    baseline_median = item.get("baseline_median", item.get("baseline_ms"))
    ratio = item.get("ratio")
    if ratio is None and baseline_median and median is not None:
        ratio = round(float(median) / float(baseline_median), 3)
    r = common.Result(
        name=str(item.get("name", "?")),
        group=str(item.get("group", group)),
        median=float(median) if median is not None else float("nan"),
        min=float(low if low is not None else median or 0),
        max=float(high if high is not None else median or 0),
        runs=int(item.get("runs", 0) or 0),
        unit=str(item.get("unit", "ms")),
        baseline=item.get("baseline") if isinstance(item.get("baseline"), str) else None,
        baseline_median=float(baseline_median) if baseline_median is not None else None,
        ratio=ratio,
        aim=item.get("aim"),
        aim_met=item.get("aim_met"),
        note=str(item.get("note", "") or ""),
        params=item.get("params")
        or {
            k: v
            for k, v in item.items()
            if k not in FIELDS | {"median_ms", "baseline_ms", "spread", "min_ms", "max_ms"}
        },
    )
    return r


def run_script(path: Path, name: str, quick: bool, url: str, extra: list[str]) -> list[common.Result]:
    """Run one bench script as a subprocess and read its results. A script that does not take --json
    yet (the contract) still runs; its printed output is kept in the note of one row."""
    helptext = subprocess.run(
        [sys.executable, str(path), "--help"], cwd=common.REPO, capture_output=True, text=True, check=False
    ).stdout
    with tempfile.TemporaryDirectory(prefix=f"bench_{name}_") as tmp:
        out = Path(tmp) / "results.json"
        cmd = [sys.executable, str(path), "--database-url", url, *extra]
        if "--json" in helptext:
            cmd += ["--json", str(out)]
        if quick and "--quick" in helptext:
            cmd.append("--quick")
        elif quick and "--rows" in helptext:
            cmd += ["--rows", "100000"]  # a script without --quick: its smallest documented size
        common.log(f"== {name}: {' '.join(c for c in cmd[1:] if c != url)}")
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=common.REPO, stdout=subprocess.PIPE, text=True, check=False)
        seconds = time.perf_counter() - start
        if proc.returncode != 0 and out.exists():
            # A script may exit non-zero when one of its aims is missed; its results still count.
            common.log(f"   {name} exited {proc.returncode} after {seconds:.0f}s; reading its results")
        elif proc.returncode != 0:
            common.log(f"   {name} failed (exit {proc.returncode}) after {seconds:.0f}s")
            return [
                common.Result(
                    name=f"{name}: FAILED (exit {proc.returncode})",
                    group=name,
                    median=float("nan"),
                    min=float("nan"),
                    max=float("nan"),
                    runs=0,
                    note=proc.stdout[-2000:],
                )
            ]
        if not out.exists():
            common.log(f"   {name}: no JSON (the script does not take --json); its output is kept as a note")
            print(proc.stdout)
            return [
                common.Result(
                    name=f"{name}: see note (printed output, no JSON)",
                    group=name,
                    median=round(seconds * 1000, 1),
                    min=round(seconds * 1000, 1),
                    max=round(seconds * 1000, 1),
                    runs=1,
                    note=proc.stdout[-6000:],
                    params={"command": " ".join(cmd[1:2] + [c for c in cmd[2:] if c != url])},
                )
            ]
        data = json.loads(out.read_text())
        items = data.get("benchmarks", data.get("results", [])) if isinstance(data, dict) else data
        common.log(f"   {name}: {len(items)} result(s) in {seconds:.0f}s")
        return [normalise(item, name) for item in items]


def machine(url: str) -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        mem_gib = round(mem / 2**20, 1)
    except (OSError, StopIteration):
        mem_gib = None
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=common.REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "runner", "sql"],
        cwd=common.REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
        "git_commit": commit,
        "uncommitted_changes_in_runner_or_sql": bool(dirty),
        **common.server_info(url),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmark suite: one table, one JSON file.")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: fewer runs, 100k rows, short pgbench runs"
    )
    parser.add_argument("--sizes", default=None, help="generator sizes (default 100k,1M,10M; --quick: 100k)")
    parser.add_argument(
        "--database-url", metavar="URL", help="server for the scratch databases (default: embedded)"
    )
    parser.add_argument("--only", help="comma-separated: generate, partition and bench_<name>.py names")
    parser.add_argument("--skip", default="", help="comma-separated names to leave out")
    parser.add_argument("--out", help="JSON path (default bench/results/<date>.json)")
    args = parser.parse_args(argv)

    url = common.server_url(args.database_url)
    sizes = [parse_size(s) for s in (args.sizes or ("100k" if args.quick else "100k,1M,10M")).split(",")]
    scripts = discover()
    wanted = ["generate", *scripts, "partition"]
    if args.only:
        wanted = [w for w in wanted if w in args.only.split(",")]
    wanted = [w for w in wanted if w not in args.skip.split(",")]
    started = dt.datetime.now(dt.UTC)
    info = machine(url)
    common.log(
        f"server {info['server_version']}, {info['cores']} cores, {info['cpu']}; running: {', '.join(wanted)}"
    )

    results: list[common.Result] = []
    partition_size = max(sizes)
    out = Path(args.out) if args.out else common.BENCH_DIR / "results" / f"{started:%Y-%m-%d}.json"

    def save(finished: bool) -> None:
        # Written after every benchmark, so an interrupted run keeps what it measured.
        common.write_json(
            out,
            results,
            started=started.isoformat(timespec="seconds"),
            finished=dt.datetime.now(dt.UTC).isoformat(timespec="seconds") if finished else None,
            command=" ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
            quick=args.quick,
            sizes=[_label(s) for s in sizes],
            machine=info,
        )

    if "generate" in wanted:
        # The largest size is generated (and timed) by the partitioning prototype when it runs.
        for size in sizes:
            if "partition" in wanted and size == partition_size:
                continue
            with common.scratch_database(url, "bench_generate") as db:
                common.apply_project(db)
                with common.connect(db) as conn:
                    g = generate(conn, size, progress=common.log)
            results.append(
                common.result(
                    f"generate {_label(size)} sessions (bench/generate.py)",
                    "generate",
                    [g.seconds * 1000],
                    params={"phases_s": g.phases, "users": g.users, "by_status": g.by_status},
                )
            )
            common.log(f"   generate {_label(size)}: {g.seconds:.1f}s {g.phases}")
            save(False)
    for name, path in scripts.items():
        if name in wanted:
            # Other issues' benchmarks run with their quick options: their full runs build 10M-row data
            # sets of their own and are documented in their scripts.
            results += run_script(path, name, args.quick or name not in ORDER, url, [])
            save(False)
    if "partition" in wanted:
        results += run_script(
            common.BENCH_DIR / "partition_prototype.py",
            "partition",
            args.quick,
            url,
            ["--size", _label(partition_size)],
        )

    print()
    common.print_table(results)
    save(True)
    missed = [r.name for r in results if r.aim_met is False]
    common.log(f"\nwrote {out}" + (f"; aims missed: {'; '.join(missed)}" if missed else "; every aim met"))
    return 0


def _label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"


if __name__ == "__main__":
    sys.exit(main())
