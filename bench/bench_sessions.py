"""Creating sessions: pgbench calling `get_or_create_checkout_session` at 1, 4 and 16 clients, against a
bare `INSERT ... ON CONFLICT DO NOTHING` into the same table (the ceiling). Aim: at least 80% of it.

What makes the comparison fair:
- the same database: one generated data set (bench/generate.py: users first, a year of sessions), copied
  afresh (CREATE DATABASE ... TEMPLATE) before every pgbench run, so each run starts from the same rows;
- the same table, indexes, foreign key and triggers (the insert trigger that fills expires_at, the
  rollup's statement triggers): the ceiling inserts into payment_checkout_sessions itself;
- the same row: user, email, plan, catalogue price, provider, currency, status 'pending', attempts 1;
- the same choice of user and plan: user uniform among all generated users, plan uniform among the
  catalogue's active plans, the same pgbench --random-seed, and the same conflict rule: a (user, plan)
  that already has a pending session gets no new row (the ceiling's ON CONFLICT on the
  one-pending-per-(user, plan) index; the function resumes it, attempts + 1). The inserted-row count of
  each run is recorded so the conflict rates can be compared.
What the function does beyond the ceiling, and is measured doing: validates its arguments, reads the
catalogue, locks the user row (FOR NO KEY UPDATE: serialises one user's concurrent calls), looks for an
open pending session (resume), expires a stale one, then inserts.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.bench_apply import libpq_env
from bench.generate import generate, parse_size, user_id_sql

GROUP = "sessions"
SEED = 1
AIM = 0.8


def scripts(conn, n_users: int) -> dict[str, str]:
    plans = conn.execute(
        "SELECT code, price, currency FROM subscription_plans WHERE active ORDER BY price, code"
    ).fetchall()
    codes = ", ".join(f"'{c}'" for c, _, _ in plans)
    prices = ", ".join(str(p) for _, p, _ in plans)
    currencies = ", ".join(f"'{c}'" for _, _, c in plans)
    head = f"\\set n random(0, {n_users - 1})\n\\set p random(1, {len(plans)})\n"
    uid = user_id_sql(":n", str(SEED))
    email = "'user' || (:n)::text || '@example.com'"
    plan = f"(ARRAY[{codes}]::text[])[(:p)::int]"
    price = f"(ARRAY[{prices}]::numeric[])[(:p)::int]"
    return {
        "ceiling": head
        + (
            "INSERT INTO payment_checkout_sessions (user_id, email, subscription_plan, plan_price, "
            "payment_provider, currency, status, attempts)\n"
            f"VALUES ({uid}, {email}, {plan}, {price}, 'stripe', (ARRAY[{currencies}]::text[])[(:p)::int], 'pending', 1)\n"
            "ON CONFLICT (user_id, subscription_plan) WHERE status = 'pending' DO NOTHING;\n"
        ),
        "function": head
        + f"SELECT get_or_create_checkout_session({uid}, {email}, {plan}, {price}, 'stripe');\n",
    }


def pgbench(url: str, script: Path, clients: int, *limit: str) -> tuple[float, float]:
    """(tps, mean latency ms) of one pgbench run of `script`; `limit` ends it (`-T <seconds>`, or
    `-t <transactions per client>`) and may add options (bench_webhook.py runs it too)."""
    env, _, db = libpq_env(url)
    cmd = [
        common.pg_bin("pgbench"),
        "-n",
        "-M",
        "prepared",
        "-f",
        str(script),
        "-c",
        str(clients),
        "-j",
        str(min(clients, 2)),
        *limit,
        db,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
    tps = float(re.search(r"tps = ([\d.]+)", proc.stdout).group(1))
    latency = float(re.search(r"latency average = ([\d.]+) ms", proc.stdout).group(1))
    return tps, latency


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--size", default=None, help="sessions to generate first (default 1M; --quick 100k)")
        p.add_argument("--clients", default="1,4,16")
        p.add_argument("--seconds", type=int, default=None, help="per pgbench run (default 10; --quick 5)")
        p.add_argument("--runs", type=int, default=None, help="pgbench runs per variant (default 3)")
        p.add_argument(
            "--no-diagnose",
            dest="diagnose",
            action="store_false",
            help="skip the diagnostic runs of both variants with the rollup's statement triggers "
            "disabled (they show how much of each figure the rollup costs)",
        )

    args = common.arguments(__doc__.splitlines()[0], extra, argv)
    size = parse_size(args.size or ("100k" if args.quick else "1M"))
    seconds = args.seconds or (5 if args.quick else 10)
    runs = args.runs or (2 if args.quick else 3)
    clients = [int(c) for c in args.clients.split(",")]
    admin = common.server_url(args.database_url)

    template, url = common.create_database(admin, prefix="bench_sessions_tpl")
    results: list[common.Result] = []
    try:
        common.apply_project(url)
        with common.connect(url) as conn:
            g = generate(conn, size, seed=SEED)
            texts = scripts(conn, g.users)
        common.log(f"  generated {g.sessions:,} sessions / {g.users:,} users in {g.seconds:.0f}s")
        variants = [("ceiling", False), ("function", False)]
        if args.diagnose:
            variants += [("ceiling", True), ("function", True)]
        with tempfile.TemporaryDirectory(prefix="bench_sessions_") as tmp:
            paths = {}
            for name, text in texts.items():
                paths[name] = Path(tmp) / f"{name}.sql"
                paths[name].write_text(text)
            for c in clients:
                tps: dict[tuple[str, bool], list[float]] = {v: [] for v in variants}
                inserted: dict[tuple[str, bool], list[int]] = {v: [] for v in variants}
                for _ in range(runs):
                    for variant in variants:
                        name, no_rollup = variant
                        with common.scratch_database(admin, "bench_sessions", template) as run_url:
                            with common.connect(run_url) as conn:
                                if no_rollup:
                                    for t in conn.execute(
                                        "SELECT tgname FROM pg_trigger WHERE tgrelid = "
                                        "'payment_checkout_sessions'::regclass AND tgname LIKE '%rollup%'"
                                    ):
                                        conn.execute(
                                            f"ALTER TABLE payment_checkout_sessions DISABLE TRIGGER {t[0]}"
                                        )
                                before = conn.execute(
                                    "SELECT count(*) FROM payment_checkout_sessions"
                                ).fetchone()[0]
                            t, lat = pgbench(
                                run_url, paths[name], c, "-T", str(seconds), f"--random-seed={SEED}"
                            )
                            with common.connect(run_url) as conn:
                                after = conn.execute(
                                    "SELECT count(*) FROM payment_checkout_sessions"
                                ).fetchone()[0]
                        tps[variant].append(t)
                        inserted[variant].append(after - before)
                        common.log(
                            f"  {c:>2} clients {name}{' (no rollup)' if no_rollup else ''}: "
                            f"{t:,.0f} tps, {lat:.2f} ms, {after - before:,} rows"
                        )
                for no_rollup in sorted({v[1] for v in variants}):
                    suffix = " (rollup triggers off)" if no_rollup else ""
                    ceiling_samples = tps[("ceiling", no_rollup)]
                    base = common.result(
                        f"create session, {c} clients: INSERT ON CONFLICT (ceiling){suffix}",
                        GROUP,
                        ceiling_samples,
                        unit="tps",
                        params=_params(
                            c, seconds, size, g.users, inserted[("ceiling", no_rollup)], ceiling_samples
                        ),
                    )
                    fn = common.result(
                        f"create session, {c} clients: get_or_create_checkout_session{suffix}",
                        GROUP,
                        tps[("function", no_rollup)],
                        unit="tps",
                        baseline=base,
                        params=_params(
                            c,
                            seconds,
                            size,
                            g.users,
                            inserted[("function", no_rollup)],
                            tps[("function", no_rollup)],
                        ),
                    )
                    if not no_rollup:
                        fn.aim = f">= {AIM:.0%} of ceiling"
                        fn.aim_met = fn.ratio is not None and fn.ratio >= AIM
                    results += [base, fn]
    finally:
        common.drop_database(admin, template)
    common.print_table(results)
    if args.json:
        common.write_json(args.json, results)
    return 0


def _params(clients: int, seconds: int, size: int, users: int, inserted: list[int], tps: list[float]) -> dict:
    transactions = sum(t * seconds for t in tps)
    new_rows = sum(inserted)
    return {
        "clients": clients,
        "seconds": seconds,
        "generated_sessions": size,
        "users": users,
        "new_rows": inserted,
        "conflict_share": round(1 - new_rows / transactions, 3) if transactions else None,
    }


if __name__ == "__main__":
    sys.exit(main())
