"""Time-partitioning prototype: retention cleanup by DELETE (the shipped, unpartitioned table) against
DETACH + DROP of a monthly partition, at 10M sessions (docs/scaling.md quotes its figures).

    python bench/partition_prototype.py [--size 10M] [--json PATH] [--database-url URL]

Steps, in one scratch database:
1. apply the project and generate `size` sessions (bench/generate.py: a year of data, loaded with
   triggers off and the rollup rebuilt after) into the shipped payment_checkout_sessions; timed too;
2. build `pcs_partitioned`: the same columns and CHECK constraints, PARTITION BY RANGE (created_at), one
   partition per calendar month, primary key (id, created_at), the shipped indexes (the unique Stripe id
   index must then include created_at); copy every row into it;
3. for each of the oldest `runs` whole months: DELETE that month from the shipped table (its triggers,
   including the rollup's, fire as in production), then the same month by
   `ALTER TABLE ... DETACH PARTITION` + `DROP TABLE`. Time, WAL written (pg_current_wal_lsn difference)
   and what is left behind (dead tuples, table size) are recorded; then the VACUUM the DELETE needs before
   the space can be reused, timed the same way;
4. lookups by id alone (no created_at) on both tables: the price of a key that lacks the partition column.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.generate import generate, parse_size

GROUP = "partitioning"
PART = "pcs_partitioned"


def wal_lsn(conn) -> str:
    return conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]


def wal_since(conn, lsn: str) -> int:
    return int(conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (lsn,)).fetchone()[0])


def build_partitioned(conn) -> list[tuple]:
    """Create pcs_partitioned with monthly partitions covering the data; returns (name, lo, hi) oldest first."""
    lo, hi = conn.execute(
        "SELECT date_trunc('month', min(created_at)), date_trunc('month', max(created_at)) + INTERVAL '1 month' "
        "FROM payment_checkout_sessions"
    ).fetchone()
    conn.execute(f"""CREATE TABLE {PART} (LIKE payment_checkout_sessions INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
                                          PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)""")
    months = conn.execute(
        "SELECT m, m + INTERVAL '1 month' FROM generate_series(%s::timestamptz, %s::timestamptz - INTERVAL '1 month', "
        "INTERVAL '1 month') AS m",
        (lo, hi),
    ).fetchall()
    parts = []
    for start, end in months:
        name = f"{PART}_{start:%Y_%m}"
        conn.execute(
            f"CREATE TABLE {name} PARTITION OF {PART} FOR VALUES FROM (%s) TO (%s)".replace(
                "%s", "'{}'"
            ).format(start.isoformat(), end.isoformat())
        )
        parts.append((name, start, end))
    conn.execute(f"CREATE TABLE {PART}_default PARTITION OF {PART} DEFAULT")
    return parts


def index_partitioned(conn) -> None:
    for sql in (
        f"CREATE INDEX ON {PART} (user_id, created_at DESC)",
        f"CREATE INDEX ON {PART} (email)",
        f"CREATE INDEX ON {PART} (status, created_at)",
        # A unique index on a partitioned table must include the partition key: uniqueness of the Stripe
        # id is then per month, not global (docs/scaling.md).
        f"CREATE UNIQUE INDEX ON {PART} (stripe_session_id, created_at)",
        f"CREATE INDEX ON {PART} (created_at) WHERE status = 'pending'",
        f"CREATE INDEX ON {PART} (expires_at) WHERE status = 'pending'",
        f"CREATE UNIQUE INDEX ON {PART} (user_id, subscription_plan, created_at) WHERE status = 'pending'",
        f"CREATE INDEX ON {PART} (created_at) INCLUDE (status)",
    ):
        conn.execute(sql)


def lookups(conn, table: str, ids: list, runs: int = 3) -> list[float]:
    """Mean ms of one `SELECT ... WHERE id = $1` over the ids, `runs` times."""
    samples = []
    query = f"SELECT status FROM {table} WHERE id = %s"
    for _ in range(runs):
        start = time.perf_counter()
        for i in ids:
            conn.execute(query, (i,), prepare=True).fetchone()
        samples.append((time.perf_counter() - start) * 1000 / len(ids))
    return samples


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--size", default=None, help="sessions (default 10M; --quick 100k)")
        p.add_argument("--runs", type=int, default=3, help="months cleaned up by each method (default 3)")

    args = common.arguments(__doc__.splitlines()[0], extra, argv)
    size = parse_size(args.size or ("100k" if args.quick else "10M"))
    admin = common.server_url(args.database_url)
    results: list[common.Result] = []
    name, url = common.create_database(admin, prefix="bench_partition")
    try:
        common.apply_project(url)
        with common.connect(url) as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            # Loaded with triggers off (then the rollup rebuilt): the load is not what is measured here.
            g = generate(conn, size, seed=1, progress=common.log, triggers=False)
            common.log(f"  generated {g.sessions:,} sessions in {g.seconds:.0f}s {g.phases}")
            results.append(
                common.result(
                    f"generate {_size(size)} sessions (bench/generate.py, triggers off)",
                    "generate",
                    [g.seconds * 1000],
                    params={"phases_s": g.phases, "users": g.users, "by_status": g.by_status},
                )
            )
            t = time.perf_counter()
            parts = build_partitioned(conn)
            conn.execute(f"INSERT INTO {PART} SELECT * FROM payment_checkout_sessions")
            index_partitioned(conn)
            conn.execute(f"VACUUM (ANALYZE) {PART}")
            common.log(
                f"  partitioned copy with {len(parts)} monthly partitions in {time.perf_counter() - t:.0f}s"
            )
            conn.execute("CHECKPOINT")
            # Whole months only (the first is partial: the data starts mid-month).
            months = parts[1 : 1 + args.runs]
            delete_ms, delete_wal, vacuum_ms, vacuum_wal, drop_ms, drop_wal, rows = [], [], [], [], [], [], []
            dead = []
            size_before = conn.execute(
                "SELECT pg_total_relation_size('payment_checkout_sessions')"
            ).fetchone()[0]
            for part, start, end in months:
                lsn = wal_lsn(conn)
                t = time.perf_counter()
                cur = conn.execute(
                    "DELETE FROM payment_checkout_sessions WHERE created_at >= %s AND created_at < %s",
                    (start, end),
                )
                delete_ms.append((time.perf_counter() - t) * 1000)
                delete_wal.append(wal_since(conn, lsn))
                rows.append(cur.rowcount)
                conn.execute("SELECT pg_stat_force_next_flush()") if _has_flush(conn) else None
                dead.append(
                    conn.execute(
                        "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'payment_checkout_sessions'"
                    ).fetchone()[0]
                )
                lsn = wal_lsn(conn)
                t = time.perf_counter()
                conn.execute(f"ALTER TABLE {PART} DETACH PARTITION {part}")
                conn.execute(f"DROP TABLE {part}")
                drop_ms.append((time.perf_counter() - t) * 1000)
                drop_wal.append(wal_since(conn, lsn))
                common.log(
                    f"  {start:%Y-%m}: {rows[-1]:,} rows; DELETE {delete_ms[-1]:,.0f} ms "
                    f"{delete_wal[-1] / 2**20:,.1f} MiB WAL; DETACH+DROP {drop_ms[-1]:,.1f} ms "
                    f"{drop_wal[-1] / 2**10:,.1f} KiB WAL"
                )
                lsn = wal_lsn(conn)
                t = time.perf_counter()
                conn.execute("VACUUM payment_checkout_sessions")
                vacuum_ms.append((time.perf_counter() - t) * 1000)
                vacuum_wal.append(wal_since(conn, lsn))
            size_after = conn.execute(
                "SELECT pg_total_relation_size('payment_checkout_sessions')"
            ).fetchone()[0]
            common_params = {"sessions": size, "rows_per_month": rows}
            drop = common.result(
                f"cleanup one month at {_size(size)}: DETACH + DROP partition",
                GROUP,
                drop_ms,
                params={**common_params, "wal_bytes": drop_wal},
            )
            delete = common.result(
                f"cleanup one month at {_size(size)}: DELETE (shipped table, triggers on)",
                GROUP,
                delete_ms,
                baseline=drop,
                params={
                    **common_params,
                    "wal_bytes": delete_wal,
                    "dead_tuples_after": dead,
                    "table_bytes_before": size_before,
                    "table_bytes_after_vacuum": size_after,
                },
            )
            vacuum = common.result(
                f"cleanup one month at {_size(size)}: VACUUM after the DELETE",
                GROUP,
                vacuum_ms,
                baseline=drop,
                params={**common_params, "wal_bytes": vacuum_wal},
            )
            results += [drop, delete, vacuum]
            delete.note = (
                f"median WAL {sorted(delete_wal)[len(delete_wal) // 2] / 2**20:,.0f} MiB vs "
                f"{sorted(drop_wal)[len(drop_wal) // 2] / 2**10:,.0f} KiB for DETACH+DROP; "
                "table size unchanged (space reusable after VACUUM, not returned)"
            )

            rng = random.Random(1)
            sample = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM payment_checkout_sessions TABLESAMPLE SYSTEM (1) LIMIT 2000"
                ).fetchall()
            ]
            ids = rng.sample(sample, min(500, len(sample)))
            plain = common.result(
                f"lookup by id at {_size(size)}: unpartitioned",
                GROUP,
                lookups(conn, "payment_checkout_sessions", ids),
            )
            part = common.result(
                f"lookup by id at {_size(size)}: partitioned, id alone",
                GROUP,
                lookups(conn, PART, ids),
                baseline=plain,
                params={"partitions": len(parts) - len(months) + 1},
            )
            results += [plain, part]
    finally:
        common.drop_database(admin, name)
    common.print_table(results)
    if args.json:
        common.write_json(args.json, results)
    return 0


def _has_flush(conn) -> bool:
    return conn.execute("SELECT to_regproc('pg_stat_force_next_flush') IS NOT NULL").fetchone()[0]


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"


if __name__ == "__main__":
    sys.exit(main())
