"""`runner adopt` on a reference-built table of 1M (or 10M) sessions, with the app writing all along, beside a
plain `ALTER TABLE ... ADD CONSTRAINT ... CHECK` (validated under an exclusive lock) on the same data.

    python bench/bench_adopt.py                    # 1M sessions
    python bench/bench_adopt.py --rows 10M         # 10M (long: the seed alone takes minutes)
    python bench/bench_adopt.py --quick            # 100k: a smoke run
    python bench/bench_adopt.py --database-url postgresql://postgres@db/postgres --json out.json

What it does, on the server of --database-url (default: this checkout's embedded PostgreSQL):
1. builds a template database the way the reference's scripts build one, with the team's own objects and
   every kind of dirty row (tests/reference_db.py; a fifth of the sessions have NULL metadata, a rule of
   its own, so a fifth of the rows get a line in runner_adoption_log), VACUUM ANALYZE;
2. on one copy, a writer thread makes the reference's calls in a loop (get_or_create_checkout_session,
   the direct UPDATE of stripe_session_id, complete_checkout_session) while `runner adopt` runs
   (in-process, the library the command calls); on another copy, the same writer while a plain
   `ALTER TABLE payment_checkout_sessions ADD CONSTRAINT ... CHECK (...)` validates the table.

Reported: the adoption's total time, the writer's longest call and its 99th percentile during each, its
calls and errors. Aim (issue 12): no step blocks the reference's reads and writes for more than a second.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BENCH_DIR,
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

PLAIN_CHECK = (
    "ALTER TABLE payment_checkout_sessions ADD CONSTRAINT bench_price_present CHECK (plan_price IS NOT NULL)"
)


class Writer(threading.Thread):
    """The reference's app: create (or resume) a checkout, link its Stripe id, complete it; timing each."""

    def __init__(self, url: str, users: int):
        super().__init__(daemon=True)
        self.url, self.users = url, users
        self.stop = threading.Event()
        self.latencies: list[float] = []  # ms per iteration (three calls)
        self.started: list[float] = []  # perf_counter at each iteration's start
        self.errors: list[str] = []

    def run(self) -> None:
        import hashlib

        import psycopg

        turn = 0
        with connect(self.url) as conn:
            conn.prepare_threshold = None
            while not self.stop.is_set():
                turn += 1
                number = 1 + turn % self.users
                user_id = uuid.UUID(hashlib.md5(f"u{number}".encode()).hexdigest())
                started = time.perf_counter()
                try:
                    session = conn.execute(
                        "SELECT get_or_create_checkout_session(p_user_id => %s, p_email => %s, p_plan => 'pro', "
                        "p_price => 29.99, p_provider => 'stripe')",
                        (user_id, f"user{number}@example.com"),
                    ).fetchone()[0]
                    stripe_id = f"cs_bench_{uuid.uuid4().hex}"
                    conn.execute(
                        "UPDATE payment_checkout_sessions SET stripe_session_id = %s WHERE id = %s",
                        (stripe_id, session),
                    )
                    conn.execute(
                        "SELECT complete_checkout_session(p_session_id => %s, p_stripe_session_id => %s, "
                        "p_stripe_customer_id => %s)",
                        (session, stripe_id, f"cus_bench_{number}"),
                    )
                except psycopg.Error as exc:
                    self.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                self.latencies.append((time.perf_counter() - started) * 1000)
                self.started.append(started)


def with_writer(url: str, users: int, work) -> tuple[float, Writer]:
    writer = Writer(url, users)
    writer.start()
    time.sleep(1.0)  # the writer's steady state first
    started = time.perf_counter()
    try:
        work()
        elapsed = (time.perf_counter() - started) * 1000
        time.sleep(0.5)
    finally:
        writer.stop.set()
        writer.join(30)
    return elapsed, writer


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) >= 100 else max(samples)


def main() -> None:
    def extra(parser) -> None:
        parser.add_argument("--rows", default="1M", help="sessions (1M, 10M)")
        parser.add_argument("--verbose", action="store_true", help="print how long each adoption step took")

    args = arguments(__doc__, extra)
    rows = 100_000 if args.quick else parse_size(args.rows)
    admin = server_url(args.database_url)
    info = server_info(admin)
    log(f"PostgreSQL {info.get('server_version')}: building the reference database with {rows:,} sessions")

    from runner import project as project_mod
    from runner.adoption import execute
    from tests import reference_db

    project = project_mod.load(BENCH_DIR.parent)
    template_name, template_url = create_database(admin, "bench_adopt_ref")
    results = []
    try:
        started = time.perf_counter()
        reference_db.build(template_url, rows)
        with connect(template_url) as conn:
            conn.execute("VACUUM ANALYZE")
        log(f"built in {time.perf_counter() - started:.0f}s")
        users = max(50, rows // 20)

        name, url = create_database(admin, "bench_adopt_run", template=template_name)
        try:
            outcome = {}
            steps: list[tuple[float, str]] = []

            def adopt() -> None:
                outcome["result"] = execute.adopt(
                    lambda: connect(url),
                    project,
                    lock_timeout=0.5,
                    on_step=lambda m: steps.append((time.perf_counter(), m)),
                )

            total, writer = with_writer(url, users, adopt)
            adopted = outcome["result"]
            logged = sum(adopted.resolved.values())
            log(
                f"adopt: {total / 1000:.1f}s, {logged:,} rows logged, writer max {max(writer.latencies):.0f} ms, "
                f"{len(writer.latencies)} calls, {len(writer.errors)} errors, {adopted.lock_retries} lock retries"
            )
            results += [
                result(
                    "adopt: total",
                    "adopt",
                    [total],
                    params={"rows": rows, "logged": logged, "lock_retries": adopted.lock_retries},
                ),
                result(
                    "adopt: writer's longest call",
                    "adopt",
                    [max(writer.latencies)],
                    aim="< 1000 ms",
                    aim_met=max(writer.latencies) < 1000,
                    params={
                        "calls": len(writer.latencies),
                        "errors": len(writer.errors),
                        "p99_ms": round(p99(writer.latencies), 1),
                        "median_ms": round(statistics.median(writer.latencies), 2),
                    },
                ),
            ]
            worst = sorted(range(len(writer.latencies)), key=lambda i: -writer.latencies[i])[:5]
            for i in worst:  # which steps the writer waited behind
                began, ended = writer.started[i], writer.started[i] + writer.latencies[i] / 1000
                running = [m for t, m in steps if t <= began][-1:] + [
                    m for t, m in steps if began < t <= ended
                ]
                log(f"  writer waited {writer.latencies[i]:.0f} ms behind: {' | '.join(running) or 'start'}")
            if args.verbose:
                for (t, m), (t2, _) in zip(steps, steps[1:] + [(steps[-1][0], "")], strict=True):
                    log(f"  {t2 - t:8.2f}s  {m}")
            if writer.errors:
                log("writer errors: " + "; ".join(sorted(set(writer.errors))[:5]))
        finally:
            drop_database(admin, name)

        name, url = create_database(admin, "bench_adopt_plain", template=template_name)
        try:

            def plain() -> None:
                with connect(url) as conn:
                    conn.execute(PLAIN_CHECK)

            total, writer = with_writer(url, users, plain)
            log(
                f"plain ALTER TABLE ... CHECK: {total / 1000:.2f}s, writer max {max(writer.latencies):.0f} ms"
            )
            results += [
                result("plain ADD CONSTRAINT CHECK: total", "adopt", [total], params={"rows": rows}),
                result(
                    "plain ADD CONSTRAINT CHECK: writer's longest call",
                    "adopt",
                    [max(writer.latencies)],
                    params={
                        "calls": len(writer.latencies),
                        "errors": len(writer.errors),
                        "p99_ms": round(p99(writer.latencies), 1),
                        "median_ms": round(statistics.median(writer.latencies), 2),
                    },
                ),
            ]
        finally:
            drop_database(admin, name)
    finally:
        drop_database(admin, template_name)
    print_table(results)
    out = args.json or BENCH_DIR / "results" / f"{time.strftime('%Y-%m-%d')}-adopt-{rows // 1000}k.json"
    write_json(out, results, server=info, rows=rows)
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
