"""Apply: `runner apply` on an empty database and a no-op re-apply, against yoyo-migrations, sqitch and
`psql -1 -f` (the ceiling), all applying the same rendered SQL of this project.

Every tool runs as the command a user would type (a fresh process each time), on a new empty database
per run; the tools take turns within each round so a slow moment of the shared machine hits all of them.

- psql: `psql -X -q -1 -v ON_ERROR_STOP=1 -f all.sql`: every rendered file, in apply order, in one
  transaction, no bookkeeping. The floor for the no-op is `psql -c 'SELECT 1'` (start, connect, query).
- the driver's floor: `python -c "import psycopg; psycopg.connect(URL).execute('SELECT 1')"`, the least
  any tool on psycopg 3 pays per call (issue 17's aims are ratios to it): a no-op `runner apply` at most
  1.25x, `runner job expire` with nothing to expire at most 1.5x, `runner apply` on an empty database at
  most 1.5x of psql -1 -f plus this one-liner.
- runner: `runner --database-url URL apply` (history table, checksums, advisory lock, one transaction
  per file), and its in-process library call (`runner.migrate.apply`) to separate out start-up.
- yoyo: one .sql migration per rendered file (`yoyo apply --batch`), psycopg 3 driver.
- sqitch: one change per rendered file, each deploy script wrapped in BEGIN/COMMIT like runner's files.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

GROUP = "apply"
# The floor of any tool on psycopg 3: start Python, import the driver, connect, one query.
DRIVER_ONE_LINER = "import sys, psycopg; psycopg.connect(sys.argv[1]).execute('SELECT 1').fetchone()"
APPLY_AIM = 1.5  # empty database: runner apply <= 1.5x (psql -1 -f + the driver's floor)
NOOP_AIM = 1.25  # no-op runner apply <= 1.25x the driver's floor, and faster than yoyo and sqitch
# The driver's one-liner, runner's no-op and `job expire` run this many times per round (each a fresh
# process, taking turns): a no-op costs a quarter of a second, and one sample per round left the median
# of seven at the mercy of one busy moment of the shared machine.
NOOP_REPEATS = 3
EXPIRE_AIM = 1.5  # runner job expire with nothing to expire <= 1.5x the driver's floor


def render(out: Path, project_dir: Path) -> dict[str, Path]:
    """Write the project's rendered SQL for each tool under out/; returns their locations."""
    from runner import project as project_mod

    files = project_mod.load(project_dir).files()
    if any(not f.transactional for f in files):
        common.log("note: a no-transaction file exists; psql -1 and the peers run it inside a transaction")
    (out / "yoyo").mkdir(parents=True)
    (out / "sqitch" / "deploy").mkdir(parents=True)
    all_sql = []
    plan = ["%syntax-version=1.0.0", "%project=checkout_sessions", ""]
    for n, f in enumerate(files, 1):
        change = f.name.removesuffix(".sql").replace("/", "_")
        all_sql.append(f"-- ===== {f.label}\n{f.rendered}\n")
        # yoyo reads a leading `-- depends:` as its own directive (a migration id); the order is already
        # runner's, so the line is renamed for yoyo.
        yoyo_sql = re.sub(r"(?m)^--\s*depends\s*:", "-- runner depends:", f.rendered)
        (out / "yoyo" / f"{n:04d}_{change}.sql").write_text(yoyo_sql)
        (out / "sqitch" / "deploy" / f"{change}.sql").write_text(f"BEGIN;\n{f.rendered}\nCOMMIT;\n")
        plan.append(f"{change} 2025-01-01T00:00:00Z bench <bench@example.com> # {f.label}")
    (out / "all.sql").write_text("".join(all_sql))
    (out / "sqitch" / "sqitch.plan").write_text("\n".join(plan) + "\n")
    (out / "sqitch" / "sqitch.conf").write_text("[core]\n\tengine = pg\n\ttop_dir = .\n")
    return {"all": out / "all.sql", "yoyo": out / "yoyo", "sqitch": out / "sqitch", "count": len(files)}


def cpu_median(samples: list[float]) -> dict[str, float]:
    """The params entry for a tool's own CPU time (user + system of its process)."""
    return {"client_cpu_ms_median": round(common.stats(samples)[0], 1)}


def cpu_ratio(samples: list[float], baseline: list[float]) -> float:
    """Median CPU time of a tool over the baseline's: what a busy machine's waiting does not inflate."""
    return common.stats(samples)[0] / common.stats(baseline)[0]


def libpq_env(url: str) -> tuple[dict[str, str], str, str]:
    """(environment with PGHOST/PGPORT/PGUSER/PGPASSWORD, user, dbname) for tools that take a bare URL."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    env = dict(os.environ)
    # Measure Python tools as installed (pip writes their bytecode; a checkout writes it on first run),
    # not recompiling every module on every run because this shell says not to write bytecode.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for key, var in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"), ("password", "PGPASSWORD")):
        if params.get(key):
            env[var] = str(params[key])
    return env, params.get("user", "postgres"), params["dbname"]


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument(
            "--project-dir",
            default=str(common.REPO),
            help="folder holding the sql/ project to apply (default: this checkout)",
        )

    args = common.arguments(__doc__.splitlines()[0], extra, argv)
    project_dir = Path(args.project_dir)
    runs = 3 if args.quick else 7
    admin = common.server_url(args.database_url)
    runner_bin = shutil.which("runner") or str(Path(sys.executable).parent / "runner")
    yoyo_bin = shutil.which("yoyo") or str(Path(sys.executable).parent / "yoyo")
    sqitch_bin = shutil.which("sqitch")
    psql = common.pg_bin("psql")
    tools = ["psql", "runner", "runner_library"]
    if Path(yoyo_bin).exists():
        tools.append("yoyo")
    else:
        common.log("yoyo not installed (pip install -e '.[bench]'): skipped")
    if sqitch_bin:
        tools.append("sqitch")
    else:
        common.log("sqitch not installed (apt-get install sqitch libdbd-pg-perl): skipped")

    full: dict[str, list[float]] = {t: [] for t in tools}
    noop: dict[str, list[float]] = {t: [] for t in tools}
    # The tool's own CPU time (user + system of its process), which a busy machine does not inflate.
    full_cpu: dict[str, list[float]] = {t: [] for t in tools}
    noop_cpu: dict[str, list[float]] = {t: [] for t in tools}
    driver: list[float] = []  # the one-liner, on runner's database of the round, before runner's no-op
    driver_cpu: list[float] = []
    expire: list[float] = []  # `runner job expire` with nothing to expire, after runner's no-op
    expire_cpu: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench_apply_") as tmp:
        paths = render(Path(tmp), project_dir)
        for round_ in range(runs):
            for tool in tools:
                with common.scratch_database(admin, prefix="bench_apply") as url:
                    env, user, db = libpq_env(url)
                    env.setdefault("SQITCH_USER_NAME", "bench")
                    env.setdefault("SQITCH_USER_EMAIL", "bench@example.com")
                    if tool == "psql":
                        cmd = [
                            psql,
                            "-X",
                            "-q",
                            "-1",
                            "-v",
                            "ON_ERROR_STOP=1",
                            "-d",
                            db,
                            "-f",
                            str(paths["all"]),
                        ]
                        full[tool].append(common.run_ms(cmd, env=env))
                        full_cpu[tool].append(common.last_cpu_ms)
                    elif tool == "runner":
                        cmd = [runner_bin, "--database-url", url, "--project-dir", str(project_dir), "apply"]
                        full[tool].append(common.run_ms(cmd, env=env, cwd=common.REPO))
                        full_cpu[tool].append(common.last_cpu_ms)
                        # The floors on the same database, just before runner's no-op: psql's first (the
                        # first connection after the DDL rebuilds the server's catalogue caches), then the
                        # driver's one-liner, then runner.
                        noop["psql"].append(
                            common.run_ms([psql, "-X", "-q", "-d", db, "-c", "SELECT 1"], env=env)
                        )
                        noop_cpu["psql"].append(common.last_cpu_ms)
                        for _ in range(NOOP_REPEATS):  # interleaved pairs: more samples, same moments
                            driver.append(
                                common.run_ms([sys.executable, "-c", DRIVER_ONE_LINER, url], env=env)
                            )
                            driver_cpu.append(common.last_cpu_ms)
                            noop[tool].append(common.run_ms(cmd, env=env, cwd=common.REPO))
                            noop_cpu[tool].append(common.last_cpu_ms)
                            expire.append(
                                common.run_ms(
                                    [
                                        runner_bin,
                                        "--database-url",
                                        url,
                                        "--project-dir",
                                        str(project_dir),
                                        "job",
                                        "expire",
                                    ],
                                    env=env,
                                    cwd=common.REPO,
                                )
                            )
                            expire_cpu.append(common.last_cpu_ms)
                    elif tool == "runner_library":
                        from runner import migrate
                        from runner import project as project_mod

                        def once() -> int:
                            project = project_mod.load(project_dir)
                            return len(migrate.apply(lambda: common.connect(url), project).steps)

                        start = time.perf_counter()
                        assert once() == paths["count"]
                        full[tool].append((time.perf_counter() - start) * 1000)
                        start = time.perf_counter()
                        assert once() == 0
                        noop[tool].append((time.perf_counter() - start) * 1000)
                    elif tool == "yoyo":
                        cmd = [
                            yoyo_bin,
                            "apply",
                            "--batch",
                            "--no-config-file",
                            "--database",
                            f"postgresql+psycopg://{user}@/{db}",
                            str(paths["yoyo"]),
                        ]
                        full[tool].append(common.run_ms(cmd, env=env))
                        full_cpu[tool].append(common.last_cpu_ms)
                        noop[tool].append(common.run_ms(cmd, env=env))
                        noop_cpu[tool].append(common.last_cpu_ms)
                    elif tool == "sqitch":
                        cmd = [sqitch_bin, "--client", psql, "deploy", f"db:pg://{user}@/{db}"]
                        full[tool].append(common.run_ms(cmd, env=env, cwd=paths["sqitch"]))
                        full_cpu[tool].append(common.last_cpu_ms)
                        noop[tool].append(common.run_ms(cmd, env=env, cwd=paths["sqitch"]))
                        noop_cpu[tool].append(common.last_cpu_ms)
            common.log(
                f"  apply round {round_ + 1}/{runs}: "
                + ", ".join(f"{t} {full[t][-1]:.0f}/{noop[t][-1]:.0f} ms" for t in tools)
            )

    labels = {
        "psql": "psql -1 -f",
        "runner": "runner apply",
        "runner_library": "runner.migrate.apply (in-process)",
        "yoyo": "yoyo apply",
        "sqitch": "sqitch deploy",
    }
    files = {"files": paths["count"]}
    results = []
    base_full = common.result(
        f"apply empty db: {labels['psql']} (ceiling)",
        GROUP,
        full["psql"],
        params={**files, **cpu_median(full_cpu["psql"])},
    )
    results.append(base_full)
    # Summed round by round: the psql of a round and the first one-liner of the same round.
    base_sum = common.result(
        "apply empty db: psql -1 -f + driver floor",
        GROUP,
        [a + b for a, b in zip(full["psql"], driver[::NOOP_REPEATS], strict=False)],
        params=dict(files),
    )
    results.append(base_sum)
    for tool in tools[1:]:
        params = {**files, **(cpu_median(full_cpu[tool]) if full_cpu[tool] else {})}
        if tool == "runner":
            r = common.result(
                f"apply empty db: {labels[tool]}",
                GROUP,
                full[tool],
                baseline=base_sum,
                params=params,
                aim=f"<= {APPLY_AIM}x psql + driver",
            )
            r.aim_met = r.ratio is not None and r.ratio <= APPLY_AIM
            r.note = f"{r.median / base_full.median:.2f}x psql -1 -f alone"
        else:
            r = common.result(
                f"apply empty db: {labels[tool]}", GROUP, full[tool], baseline=base_full, params=params
            )
        results.append(r)
    results.append(
        common.result(
            "no-op: psql -c 'SELECT 1' (floor)", GROUP, noop["psql"], params=cpu_median(noop_cpu["psql"])
        )
    )
    base_driver = common.result(
        "no-op: python import psycopg; connect; SELECT 1 (driver floor)",
        GROUP,
        driver,
        params=cpu_median(driver_cpu),
    )
    results.append(base_driver)
    peers = [common.stats(noop[t])[0] for t in ("yoyo", "sqitch") if t in tools]
    for tool in tools[1:]:
        r = common.result(
            f"no-op re-apply: {labels[tool]}",
            GROUP,
            noop[tool],
            baseline=base_driver,
            params=cpu_median(noop_cpu[tool]) if noop_cpu[tool] else {},
        )
        if tool == "runner":
            r.aim = f"<= {NOOP_AIM}x driver, < yoyo and sqitch"
            r.aim_met = r.ratio is not None and r.ratio <= NOOP_AIM and all(r.median < p for p in peers)
            r.note = (
                (f"fastest peer {min(peers):.0f} ms" if peers else "no peer installed")
                + ("" if len(peers) == 2 else " (yoyo or sqitch not installed: not compared)")
                + (f"; own CPU {cpu_ratio(noop_cpu[tool], driver_cpu):.2f}x the driver's")
            )
        results.append(r)
    r = common.result(
        "nothing to expire: runner job expire",
        GROUP,
        expire,
        baseline=base_driver,
        params=cpu_median(expire_cpu),
        aim=f"<= {EXPIRE_AIM}x driver",
    )
    r.aim_met = r.ratio is not None and r.ratio <= EXPIRE_AIM
    r.note = f"own CPU {cpu_ratio(expire_cpu, driver_cpu):.2f}x the driver's"
    results.append(r)
    common.print_table(results)
    if args.json:
        common.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
