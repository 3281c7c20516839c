"""`runner job expire` against one bare UPDATE, on the same data in the same run.

    python bench/bench_expire.py                      # 10M sessions, 1M overdue (several minutes)
    python bench/bench_expire.py --rows 1M            # 100k overdue (a tenth, as always)
    python bench/bench_expire.py --quick              # 200k sessions: a smoke run
    python bench/bench_expire.py --database-url postgresql://postgres@db/postgres --json out.json

What it does, on the server of --database-url (default: this checkout's embedded PostgreSQL):
1. builds a template database: the SQL project applied, then `--rows` sessions, a tenth of them pending
   and past expires_at (the backlog), the rest completed/expired/canceled over the past year, set-based
   (INSERT ... SELECT generate_series), indexes rebuilt after the load, VACUUM ANALYZE;
2. per run, two file copies of it (CREATE DATABASE ... TEMPLATE): on one, the reference's job as one
   statement, `UPDATE payment_checkout_sessions SET status = 'expired' WHERE status = 'pending' AND
   expires_at <= now()`; on the other, `runner job expire` (the real command, a subprocess);
3. then `runner job expire` again with nothing overdue, timing the database work (EXPLAIN ANALYZE of the
   batch call, and the whole in-process run including the job_runs bookkeeping).

Reported: rows/s of each and their ratio (aim: the job at least half the UPDATE's), the job's longest
batch, i.e. the longest time any of its transactions held row locks (aim: under 1 s; the bare UPDATE
holds its locks for its whole duration), and the nothing-overdue time (aim: under 50 ms).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Result,
    apply_project,
    arguments,
    connect,
    create_database,
    drop_database,
    log,
    print_table,
    result,
    server_info,
    server_url,
    write_json,
)
from bench.generate import parse_size

TABLE = "payment_checkout_sessions"
BARE_UPDATE = (
    "UPDATE payment_checkout_sessions SET status = 'expired' WHERE status = 'pending' AND expires_at <= now()"
)


def build(url: str, rows: int, overdue: int) -> dict[str, float]:
    """Fill an applied database: `overdue` pending sessions past expiry among `rows`."""
    phases: dict[str, float] = {}
    with connect(url) as conn:
        started = time.perf_counter()
        # One pending session per (user, plan): enough users that the overdue rows never share a pair.
        plans = [r[0] for r in conn.execute("SELECT code FROM subscription_plans WHERE active ORDER BY code")]
        users = max(1, -(-overdue // len(plans)))
        conn.execute(
            "INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, %s) g",
            (users,),
        )
        conn.execute(
            "CREATE TEMP TABLE bench_users AS SELECT row_number() OVER (ORDER BY id) - 1 AS n, id, email "
            "FROM users"
        )
        conn.execute("CREATE INDEX ON bench_users (n)")
        phases["users"] = time.perf_counter() - started

        started = time.perf_counter()
        indexes = conn.execute(
            """SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
                WHERE i.indrelid = %s::regclass AND NOT i.indisprimary
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)""",
            (TABLE,),
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        # Load without row triggers and foreign-key checks (the data is valid by construction); the
        # rollup the statement triggers keep is rebuilt below. The timed runs have every trigger on.
        conn.execute("SET session_replication_role = replica")
        chunk = 1_000_000
        for lo in range(0, rows, chunk):
            hi = min(rows, lo + chunk)
            # i < overdue: pending, created 25-48 h ago, expires 24 h after creation (so overdue).
            # Others: completed 40% / expired 50% / canceled 10%, created within the past year.
            conn.execute(
                f"""INSERT INTO {TABLE} (user_id, email, subscription_plan, plan_price, payment_provider, currency,
                                         created_at, expires_at, status, completed_at, attempts)
                    SELECT u.id, u.email, (%(plans)s::text[])[1 + (g / %(users)s) %% %(nplans)s], 29.99, 'stripe',
                           'usd', c.created_at, c.created_at + interval '24 hours', st.status,
                           CASE WHEN st.status = 'completed' THEN c.created_at + interval '10 minutes' END,
                           1 + g %% 3
                      FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) g
                      JOIN bench_users u ON u.n = g %% %(users)s
                     CROSS JOIN LATERAL (SELECT CASE WHEN g < %(overdue)s
                          THEN now() - interval '25 hours' - (g %% 82800) * interval '1 second'
                          ELSE now() - interval '2 days' - (g %% 31000000) * interval '1 second' END AS created_at) c
                     CROSS JOIN LATERAL (SELECT CASE WHEN g < %(overdue)s THEN 'pending'
                          WHEN g %% 10 < 4 THEN 'completed' WHEN g %% 10 < 9 THEN 'expired'
                          ELSE 'canceled' END AS status) st""",
                {
                    "plans": plans,
                    "nplans": len(plans),
                    "users": users,
                    "lo": lo,
                    "hi": hi,
                    "overdue": overdue,
                },
            )
            log(f"  {hi:,} / {rows:,} sessions")
        conn.execute("RESET session_replication_role")
        phases["sessions"] = time.perf_counter() - started
        started = time.perf_counter()
        if conn.execute("SELECT to_regproc('rebuild_checkout_session_rollup') IS NOT NULL").fetchone()[0]:
            conn.execute("SELECT rebuild_checkout_session_rollup()")
        phases["rollup"] = time.perf_counter() - started
        started = time.perf_counter()
        for _, definition in indexes:
            conn.execute(definition)
        phases["indexes"] = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        phases["vacuum"] = time.perf_counter() - started
        got = conn.execute(
            f"SELECT count(*) FILTER (WHERE status = 'pending' AND expires_at <= now()), count(*) "
            f"FROM {TABLE}"
        ).fetchone()
        if got != (overdue, rows):
            raise RuntimeError(
                f"generated {got[1]} sessions with {got[0]} overdue, wanted {rows} and {overdue}"
            )
    return phases


def bare_update(url: str) -> tuple[int, float]:
    with connect(url) as conn:
        started = time.perf_counter()
        n = conn.execute(BARE_UPDATE).rowcount
        return n, time.perf_counter() - started


def runner_expire(url: str, batch_size: int) -> tuple[dict, float]:
    argv = [
        sys.executable,
        "-m",
        "runner",
        "--database-url",
        url,
        "job",
        "expire",
        "--format",
        "json",
        "--batch-size",
        str(batch_size),
    ]
    started = time.perf_counter()
    proc = subprocess.run(
        argv, check=False, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())}
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"runner job expire exited {proc.returncode}: {proc.stderr.strip()}")
    return json.loads(proc.stdout), wall


def nothing_overdue(url: str, batch_size: int) -> tuple[float, float, float]:
    """Milliseconds of `runner job expire` (in-process: connect, lock, job_runs, batch) with nothing overdue:
    right after the backlog run (the partial index still holds the expired rows' dead entries), then,
    after a VACUUM of the table (what autovacuum does between hourly runs), the whole run and the
    database's own time for the batch call (EXPLAIN ANALYZE)."""
    from runner.jobs import tasks as jobs

    def whole() -> float:
        started = time.perf_counter()
        run = jobs.run(lambda: connect(url), "expire", batch_size=batch_size)
        assert run.rows == 0
        return (time.perf_counter() - started) * 1000

    after_backlog = whole()
    with connect(url) as conn:
        conn.execute(f"VACUUM {TABLE}")
    steady = whole()
    with connect(url) as conn:
        plan = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) SELECT expire_old_checkout_sessions(%s)", (batch_size,)
        ).fetchone()[0]
    return after_backlog, steady, plan[0]["Execution Time"]


def main(argv: list[str] | None = None) -> int:
    args = arguments(
        __doc__.splitlines()[0],
        lambda p: (
            p.add_argument("--rows", default=None, help="sessions (e.g. 10M, 1M, 200k); a tenth are overdue"),
            p.add_argument("--batch-size", type=int, default=10_000, help="runner job expire --batch-size"),
            p.add_argument(
                "--runs", type=int, default=None, help="copies to compare on (default 1; --quick 2)"
            ),
        ),
        argv,
    )
    rows = parse_size(args.rows) if args.rows else (200_000 if args.quick else 10_000_000)
    overdue = rows // 10
    runs = args.runs or (2 if args.quick else 1)
    admin = server_url(args.database_url)
    log(f"bench_expire: {rows:,} sessions, {overdue:,} overdue, batch size {args.batch_size}, {runs} run(s)")

    template, template_url = create_database(admin, "bench_expire_tpl")
    copies: list[str] = []
    try:
        started = time.perf_counter()
        apply_project(template_url)
        phases = build(template_url, rows, overdue)
        log(
            f"  built in {time.perf_counter() - started:.1f}s ({', '.join(f'{k} {v:.1f}s' for k, v in phases.items())})"
        )

        update_rps, job_rps, job_wall_rps, longest, explain, whole, cold = [], [], [], [], [], [], []
        for i in range(runs):
            a, a_url = create_database(admin, "bench_expire_update", template)
            b, b_url = create_database(admin, "bench_expire_job", template)
            copies += [a, b]
            order = ["update", "job"] if i % 2 == 0 else ["job", "update"]
            for which in order:
                if which == "update":
                    n, seconds = bare_update(a_url)
                    assert n == overdue, n
                    update_rps.append(n / seconds)
                    log(
                        f"  run {i + 1}: bare UPDATE {n:,} rows in {seconds:.2f}s ({n / seconds:,.0f} rows/s); "
                        f"one transaction held the locks {seconds:.2f}s"
                    )
                else:
                    data, wall = runner_expire(b_url, args.batch_size)
                    assert data["rows"] == overdue, data
                    job_rps.append(data["rows"] / data["seconds"])
                    job_wall_rps.append(data["rows"] / wall)
                    longest.append(data["details"]["longest_batch_seconds"] * 1000)
                    log(
                        f"  run {i + 1}: runner job expire {data['rows']:,} rows in {data['batches']} batches, "
                        f"{data['seconds']:.2f}s in the job ({wall:.2f}s with process start-up); longest batch "
                        f"{longest[-1]:.0f} ms"
                    )
            first, w, e = nothing_overdue(b_url, args.batch_size)
            cold.append(first)
            explain.append(e)
            whole.append(w)
            log(
                f"  run {i + 1}: nothing overdue: {first:.1f} ms right after the backlog; after VACUUM "
                f"{w:.1f} ms for the whole run, {e:.2f} ms database time in the batch call (EXPLAIN ANALYZE)"
            )
            for name in (a, b):
                drop_database(admin, name)
            copies = []

        base = result("bare UPDATE", "expire", update_rps, unit="rows/s")
        job = result("runner job expire", "expire", job_rps, unit="rows/s", baseline=base, aim=">= 0.5x")
        job.aim_met = job.ratio is not None and job.ratio >= 0.5
        wall = result(
            "runner job expire (incl. start-up)", "expire", job_wall_rps, unit="rows/s", baseline=base
        )
        lock = result("longest batch lock hold", "expire", longest, aim="< 1000 ms")
        lock.aim_met = lock.max < 1000
        idle = result("nothing overdue: database time", "expire", explain, aim="< 50 ms")
        idle.aim_met = idle.max < 50
        idle_run = result("nothing overdue: whole run", "expire", whole, aim="< 50 ms")
        idle_run.aim_met = idle_run.max < 50
        after = result(
            "nothing overdue, before vacuum",
            "expire",
            cold,
            note="the partial index still lists the rows just expired",
        )
        results: list[Result] = [base, job, wall, lock, idle, idle_run, after]
        for r in results:
            r.params = {"rows": rows, "overdue": overdue, "batch_size": args.batch_size}
        print(f"\nexpire: {rows:,} sessions, {overdue:,} overdue, batch size {args.batch_size}\n")
        print_table(results)
        print(f"\nratio job/UPDATE rows/s: {job.ratio:.2f} (aim >= 0.5)")
        if args.json:
            write_json(args.json, results, **server_info(admin))
        return 0 if all(r.aim_met in (None, True) for r in results) else 1
    finally:
        for name in copies:
            drop_database(admin, name)
        drop_database(admin, template)


if __name__ == "__main__":
    raise SystemExit(main())
