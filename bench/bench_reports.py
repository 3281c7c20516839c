"""Benchmark: every report at 1 million and 10 million checkout sessions, next to the reference's own
query for the same question on the reference's indexes, in the same run.

    python bench/bench_reports.py                      # 1M and 10M rows, embedded PostgreSQL
    python bench/bench_reports.py --rows 100000        # a quick run
    python bench/bench_reports.py --database-url postgresql://postgres@localhost/postgres --runs 7
    python -m bench --only reports                     # through the suite (--quick: 100k rows, 3 runs)

For each size it creates a database `bench_reports_<rows>` on the server (dropping an old one), applies
the project, generates the data set-based (generate_series) and times each report: the median of --runs
runs after one warm-up. The reference's queries run inside a transaction that drops this project's own
extra indexes first (rolled back after), so they see only the reference's six indexes.

The data: sessions spread evenly over 365 days; sessions older than a day are completed (35 %), expired
(55 %), canceled or failed; the last day's are partly still pending (as after the hourly expire job);
one in ten was retried; 90 % have a Stripe session id. Loaded with triggers off (session_replication_role
= replica: no per-row foreign key checks), then the rollup is rebuilt, then VACUUM ANALYZE.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.generate import parse_size
from bench.reference import query
from runner import migrate
from runner import project as project_mod
from runner.reporting import reports

TARGET_MS = 100.0
# This project's indexes beyond the reference's six (and the unique one-pending rule, which is a
# correctness constraint the reference's functions rely on implicitly).
OWN_INDEXES = ("idx_payment_checkout_sessions_created_at", "idx_payment_checkout_sessions_completed")

# The reference's queries, verbatim; where the reference asks the question but gives no query, the
# plain query a reader would write ("raw").
REFERENCE: dict[str, tuple[str, list[str]]] = {
    "conversion_rate": ("reference", [query("-- Conversion rate\n")]),
    "abandonment_by_plan": ("reference", [query("-- Abandonment by plan")]),
    "reminder_candidates": ("reference", [query("-- Find users who need reminders")]),
    "daily_health": (
        "reference",
        [
            query("-- Sessions created today"),
            # NULLIF: a day without sessions would divide by zero (the report answers NULL there).
            query("-- Completion rate today").replace("/ COUNT(*) as rate", "/ NULLIF(COUNT(*), 0) as rate"),
            query("-- Pending sessions older than 1 hour"),
        ],
    ),
    "weekly_report": ("reference", [query("GROUP BY DATE(created_at)")]),
    "sessions_by_status": ("reference", [query("-- Sessions by status")]),
    "abandonment_age": ("reference", [query("-- Average time before abandonment")]),
    "stuck_sessions": ("reference", [query("-- Find pending sessions with Stripe ID")]),
    "recent_webhooks": ("reference", [query("-- Check webhook logs")]),
    # From the reference's prose ("Check database logs"), not one of its SQL blocks.
    "error_summary": ("reference", ["SELECT * FROM error_logs WHERE category = 'database'"]),
    "time_to_complete": (
        "raw",
        [
            """SELECT avg(EXTRACT(EPOCH FROM completed_at - created_at) / 60),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM completed_at - created_at))
  FROM payment_checkout_sessions WHERE status = 'completed' AND created_at > now() - INTERVAL '7 days'"""
        ],
    ),
    "completion_time_distribution": (
        "raw",
        [
            """SELECT width_bucket(EXTRACT(EPOCH FROM completed_at - created_at),
       ARRAY[60, 300, 900, 3600, 21600, 86400]), count(*)
  FROM payment_checkout_sessions WHERE status = 'completed' AND created_at > now() - INTERVAL '30 days'
 GROUP BY 1"""
        ],
    ),
    "retry_stats": (
        "raw",
        [
            """SELECT count(*), count(*) FILTER (WHERE attempts > 1), avg(attempts)
  FROM payment_checkout_sessions WHERE created_at > now() - INTERVAL '30 days'"""
        ],
    ),
    "conversion_by_plan": (
        "raw",
        [
            """SELECT subscription_plan, count(*) FILTER (WHERE status = 'completed') * 100.0 / count(*)
  FROM payment_checkout_sessions WHERE created_at > now() - INTERVAL '30 days' GROUP BY 1"""
        ],
    ),
}

GENERATE = """
INSERT INTO users (id, email, created_at)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(u), 12, '0'))::uuid, 'bench-' || u || '@example.com',
       now() - INTERVAL '400 days'
  FROM generate_series(%(first_user)s::bigint, %(last_user)s::bigint) AS u;

INSERT INTO payment_checkout_sessions
       (id, user_id, email, subscription_plan, plan_price, payment_provider, stripe_session_id, status,
        created_at, expires_at, completed_at, attempts)
SELECT gen_random_uuid(),
       ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i %% %(users)s::bigint), 12, '0'))::uuid,
       'bench-' || (1 + i %% %(users)s::bigint) || '@example.com',
       plan, CASE plan WHEN 'basic' THEN 9.99 WHEN 'pro' THEN 29.99 ELSE 99.99 END, 'stripe',
       CASE WHEN h %% 10 <> 0 THEN 'cs_bench_' || i END,
       status, created, created + INTERVAL '24 hours',
       CASE WHEN status = 'completed' THEN created + ((h * 7919) %% 3600 + 20) * INTERVAL '1 second'
                                            + (CASE WHEN h %% 50 = 0 THEN h %% 20 ELSE 0 END) * INTERVAL '1 hour' END,
       1 + (i %% 10 = 0)::int + (i %% 30 = 0)::int
  FROM (
    SELECT i, h, created,
           (ARRAY['basic', 'pro', 'pro', 'enterprise'])[1 + (h / 7) %% 4] AS plan,
           CASE WHEN created > now() - INTERVAL '24 hours' THEN
                  CASE WHEN h %% 100 < 40 THEN 'pending' WHEN h %% 100 < 80 THEN 'completed'
                       WHEN h %% 100 < 92 THEN 'canceled' ELSE 'failed' END
                ELSE
                  CASE WHEN h %% 100 < 35 THEN 'completed' WHEN h %% 100 < 90 THEN 'expired'
                       WHEN h %% 100 < 97 THEN 'canceled' ELSE 'failed' END
           END AS status
      FROM (SELECT i, (i * 2654435761) %% 1000003 AS h,
                   now() - (%(rows)s::bigint - i) * (INTERVAL '365 days' / %(rows)s::bigint) AS created
              FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i) AS g
  ) AS s;
"""

GENERATE_EVENTS = """
INSERT INTO webhook_events (stripe_event_id, topic, payload, status, created_at, processed_at)
SELECT 'evt_bench_' || i,
       (ARRAY['checkout.session.completed', 'checkout.session.expired', 'invoice.paid', 'customer.created'])[1 + i %% 4],
       '{}'::jsonb, CASE WHEN i %% 50 = 0 THEN 'failed' WHEN i %% 7 = 0 THEN 'ignored' ELSE 'processed' END,
       now() - (%(n)s::bigint - i) * (INTERVAL '365 days' / %(n)s::bigint),
       now() - (%(n)s::bigint - i) * (INTERVAL '365 days' / %(n)s::bigint) + INTERVAL '1 second'
  FROM generate_series(1, %(n)s::bigint) AS i;
INSERT INTO error_logs (category, message, created_at)
SELECT (ARRAY['database', 'stripe', 'webhook', 'email'])[1 + i %% 4], 'bench error ' || i,
       now() - (%(e)s::bigint - i) * (INTERVAL '365 days' / %(e)s::bigint)
  FROM generate_series(1, %(e)s::bigint) AS i;
"""


def admin_url(given: str | None) -> str:
    if given:
        return given
    out = subprocess.run(
        [sys.executable, "-m", "runner", "db", "url"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def build(admin: str, rows: int, project: project_mod.Project, reuse: bool = False) -> str:
    name = f"bench_reports_{rows}"
    url = make_conninfo(admin, dbname=name)
    if reuse:
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            started = time.monotonic()
            migrate.apply(lambda: psycopg.connect(url, autocommit=True), project)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
            print(
                f"  reused {name}, applied the project in {time.monotonic() - started:.0f}s", file=sys.stderr
            )
            return url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    migrate.apply(lambda: psycopg.connect(url, autocommit=True), project)
    users = max(rows // 4, 10)
    chunk = 1_000_000
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn, psycopg.ClientCursor(conn) as cur:
        cur.execute("SET session_replication_role = replica")
        cur.execute("SET synchronous_commit = off")
        for first in range(1, rows + 1, chunk):
            last = min(first + chunk - 1, rows)
            first_user, last_user = first, min(last, users)
            cur.execute(
                GENERATE,
                {
                    "first": first,
                    "last": last,
                    "rows": rows,
                    "users": users,
                    "first_user": first_user,
                    "last_user": last_user,
                },
            )
            print(f"  generated {last:>11,} sessions ({time.monotonic() - started:.0f}s)", file=sys.stderr)
        cur.execute(GENERATE_EVENTS, {"n": max(rows // 5, 10), "e": max(rows // 100, 10)})
        cur.execute("SET session_replication_role = origin")
        cur.execute("SELECT rebuild_checkout_session_rollup()")
        cur.execute("VACUUM ANALYZE")
    print(f"  built {name} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return url


def median_ms(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(url: str, project: project_mod.Project, runs: int) -> dict[str, tuple[float, float, int]]:
    """report -> (ours ms, reference ms, rows ours returned)."""
    results = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for report in reports.available(project):
            returned = len(reports.run(conn, project, report.name).rows)
            ours = median_ms(lambda r=report.name: reports.run(conn, project, r), runs)
            ref_ms = float("nan")
            if report.name in REFERENCE:
                queries = REFERENCE[report.name][1]
                with conn.transaction(force_rollback=True):
                    for index in OWN_INDEXES:
                        conn.execute(f"DROP INDEX {index}")
                    ref_ms = median_ms(lambda qs=queries: [conn.execute(q).fetchall() for q in qs], runs)
            results[report.name] = (ours, ref_ms, returned)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="server to create the bench databases on (default: the embedded one)",
    )
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated sizes (default 1M,10M)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per query (median)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 100k rows, 3 runs")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the bench databases; with --reuse a later run measures them again",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure an existing bench_reports_<rows> database (after applying the project)",
    )
    parser.add_argument(
        "--json", metavar="PATH", help="also write the results as JSON (bench/README.md contract)"
    )
    args = parser.parse_args()
    if args.quick:
        args.rows, args.runs = "100000", 3
    sizes = [parse_size(s) for s in args.rows.split(",")]
    project = project_mod.load(REPO)
    admin = admin_url(args.database_url)
    print(
        f"server: {conninfo_to_dict(admin).get('host')}  sizes: {sizes}  runs: {args.runs}", file=sys.stderr
    )
    table: dict[int, dict[str, tuple[float, float, int]]] = {}
    for rows in sizes:
        url = build(admin, rows, project, reuse=args.reuse)
        table[rows] = measure(url, project, args.runs)
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "bench_reports_{rows}" WITH (FORCE)')
    print_table(sizes, table)
    if args.json:
        write_json(args.json, sizes, table, args.runs)


def write_json(path: str, sizes: list[int], table: dict, runs: int) -> None:
    """One line per report and size, in the gather contract's fields (bench/README.md)."""
    import json

    items = []
    for n in sizes:
        for name, (ours, ref, returned) in sorted(table[n].items()):
            items.append(
                {
                    "name": f"report {name} @{n:,}",
                    "group": "reports",
                    "median_ms": round(ours, 3),
                    "runs": runs,
                    "unit": "ms",
                    "baseline": REFERENCE.get(name, ("",))[0] or None,
                    "baseline_ms": None if math.isnan(ref) else round(ref, 3),
                    "ratio": None if math.isnan(ref) else round(ours / ref, 3),
                    "aim": f"< {TARGET_MS:.0f} ms",
                    "aim_met": ours < TARGET_MS,
                    "params": {"rows": n, "returned": returned},
                }
            )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"benchmarks": items}, indent=2) + "\n")


def print_table(sizes: list[int], table: dict[int, dict[str, tuple[float, float, int]]]) -> None:
    def label(n: int) -> str:
        return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)

    head = ["report", "vs"]
    for n in sizes:
        head += [f"ours {label(n)} ms", f"ref {label(n)} ms", f"ref/ours {label(n)}"]
    if len(sizes) > 1:
        head += [f"growth ours {label(sizes[0])}->{label(sizes[-1])}", "growth ref"]
    rows = []
    for name in sorted(table[sizes[0]]):
        row = [name, REFERENCE.get(name, ("-",))[0]]
        for n in sizes:
            ours, ref, _ = table[n][name]
            row += [
                f"{ours:.1f}",
                "-" if math.isnan(ref) else f"{ref:.1f}",
                "-" if math.isnan(ref) else f"{ref / ours:.1f}x",
            ]
        if len(sizes) > 1:
            first, last = table[sizes[0]][name], table[sizes[-1]][name]
            row += [
                f"{last[0] / first[0]:.1f}x",
                "-" if first[1] != first[1] else f"{last[1] / first[1]:.1f}x",
            ]
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=False)))
    for r in rows:
        print(
            "  ".join(
                str(c).rjust(w) if i > 1 else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=False))
            )
        )
    largest = sizes[-1]
    slow = [n for n, (ours, _, _) in table[largest].items() if ours >= TARGET_MS]
    print(
        f"\nAt {label(largest)} sessions: {len(table[largest]) - len(slow)} of {len(table[largest])} reports under "
        f"{TARGET_MS:.0f} ms" + (f"; over: {', '.join(slow)}" if slow else ".")
    )


if __name__ == "__main__":
    main()
