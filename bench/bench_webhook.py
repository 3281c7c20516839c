"""Stripe webhook deliveries: signed `checkout.session.completed` events per second, and p50/p99 latency, at
16 concurrent keep-alive connections on loopback against a real `runner serve` (granian), next to pgbench
calling `complete_checkout_session` directly on the same database (the ceiling). Aims: at least 1,000
events/s on a 2-core machine, and at least a quarter of the database's own rate.

What is measured:
- one data set (bench/generate.py: a year of sessions and their users) plus N users, each with one pending
  session linked to a Stripe session id (as create-checkout leaves it), in a template database; every run
  (webhook or pgbench) gets a fresh copy (CREATE DATABASE ... TEMPLATE), so every run starts from the same
  rows and completes the same N sessions;
- the webhook: `runner serve` started as operators start it (a subprocess, `--workers` threads, text request
  log to a file); every event is a distinct, correctly signed delivery (`t=...,v1=HMAC-SHA256`) of a paid
  `checkout.session.completed` whose amount, currency, livemode and ids match its row, so each one verifies,
  records the event, completes the session, activates the user and queues the verification email. Bodies
  and signatures are built before the clock starts; the client (this process, one thread with a selector
  over plain sockets, one keep-alive HTTP/1.1 connection per concurrent client, closed loop) only writes
  prepared bytes and reads responses, so it takes little of the 2 cores from the server. A short warm-up
  (its own sessions) precedes the timed part. After each run the database must show N completed sessions and N processed events;
- the ceiling: pgbench, same client count, `complete_checkout_session(id, stripe_session_id, customer)` on
  a distinct pending session per transaction (a pre-built table of ids numbered 1..N, read through a
  sequence), N transactions in all. It does less than the webhook (no event row, no checks, no email):
  that difference, plus HTTP, signature and Python, is what the ratio prices;
- beside it, pgbench calling `record_webhook_event` (the service's one SQL call) on the same events stored
  in a table: the database's rate for the webhook's own work, without HTTP or Python;
- CPU per event of the server process, the database backends serving it and the client (/proc), which
  waiting for a core does not inflate on a shared machine; and, unless --no-diagnose, every side again
  with the rollup's statement triggers off (all seeded sessions share one rollup hour, so each completion
  updates the same few rollup rows and holds their locks until commit).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.bench_sessions import pgbench
from bench.generate import generate, parse_size

GROUP = "webhook"
SEED = 1
SECRET = "whsec_bench_0123456789abcdef"
RATE_AIM = 1000.0
RATIO_AIM = 0.25
WARMUP = 300

# The year behind the data set, as the webhook left it: each completed session's checkout.session.completed
# event (processed) and its verification email (sent). Without them webhook_events starts empty, and each
# pooled connection keeps the plan its first calls made for the event lookup on an empty table, a sequential
# scan, which every event then reads further as the run fills the table: no running service has that cost
# (autovacuum's analyze of the filled table replaces the plan within a minute).
HISTORY_SQL = """
INSERT INTO webhook_events (stripe_event_id, topic, payload, livemode, status, outcome, created_at, processed_at,
                            checkout_session_id)
SELECT 'evt_history_' || replace(s.id::text, '-', ''), 'checkout.session.completed',
       jsonb_build_object(
         'id', 'evt_history_' || replace(s.id::text, '-', ''), 'object', 'event', 'livemode', false,
         'api_version', '2025-01-27.acacia', 'created', extract(epoch FROM s.completed_at)::bigint,
         'type', 'checkout.session.completed', 'data', jsonb_build_object('object', jsonb_build_object(
           'id', coalesce(s.stripe_session_id, 'cs_history_' || replace(s.id::text, '-', '')),
           'object', 'checkout.session', 'amount_total', stripe_amount_minor_units(s.plan_price, c.currency),
           'currency', c.currency, 'customer', s.stripe_customer_id, 'client_reference_id', s.id,
           'livemode', false, 'mode', 'subscription', 'payment_status', 'paid', 'status', 'complete',
           'metadata', jsonb_build_object('userId', s.user_id, 'plan', s.subscription_plan,
                                          'checkoutSessionId', s.id)))),
       false, 'processed', 'completed', s.completed_at, s.completed_at, s.id
  FROM payment_checkout_sessions s
  JOIN subscription_plans p ON p.code = s.subscription_plan
  CROSS JOIN LATERAL (SELECT lower(coalesce(s.currency, p.currency)) AS currency) c
 WHERE s.status = 'completed';
INSERT INTO email_outbox (kind, recipient, dedupe_key, user_id, checkout_session_id, context, status, attempts,
                          created_at, next_attempt_at, sent_at)
SELECT 'verification', s.email, 'verification:' || s.id, s.user_id, s.id,
       jsonb_build_object('plan', s.subscription_plan, 'amount', s.plan_price, 'currency', c.currency),
       'sent', 1, s.completed_at, s.completed_at, s.completed_at
  FROM payment_checkout_sessions s
  JOIN subscription_plans p ON p.code = s.subscription_plan
  CROSS JOIN LATERAL (SELECT lower(coalesce(s.currency, p.currency)) AS currency) c
 WHERE s.status = 'completed';
"""

SEED_SQL = """
INSERT INTO users (id, email, created_at)
SELECT md5('webhook/u/' || n)::uuid, 'webhook' || n || '@example.com', now()
  FROM generate_series(1, %(n)s) AS n;
INSERT INTO payment_checkout_sessions (id, user_id, email, subscription_plan, plan_price, payment_provider,
                                       stripe_session_id, status, attempts, currency, checkout_url,
                                       stripe_sessions_created)
SELECT md5('webhook/s/' || n)::uuid, md5('webhook/u/' || n)::uuid, 'webhook' || n || '@example.com',
       p.code, p.price, 'stripe', 'cs_test_webhook_' || n, 'pending', 1, p.currency,
       'https://checkout.stripe.com/c/pay/cs_test_webhook_' || n, 1
  FROM generate_series(1, %(n)s) AS n
  JOIN (SELECT code, price, currency, row_number() OVER (ORDER BY price, code) - 1 AS k,
               count(*) OVER () AS plans
          FROM subscription_plans WHERE active) p ON p.k = n %% p.plans;
-- The ceiling's work list: session n for pgbench's n-th transaction.
CREATE TABLE bench_webhook_ids (n BIGINT PRIMARY KEY, id UUID NOT NULL, stripe_session_id TEXT NOT NULL);
INSERT INTO bench_webhook_ids SELECT n, md5('webhook/s/' || n)::uuid, 'cs_test_webhook_' || n
  FROM generate_series(1, %(n)s) AS n;
CREATE SEQUENCE bench_webhook_seq;
"""

# The uncorrelated subquery runs once per statement (an InitPlan), so the lookup is a primary-key probe.
PGBENCH_SCRIPT = """SELECT complete_checkout_session(b.id, b.stripe_session_id, 'cus_bench')
  FROM bench_webhook_ids b WHERE b.n = (SELECT nextval('bench_webhook_seq'));
"""
# The webhook's own SQL without HTTP or Python: the same call the service makes, on stored payloads.
# Signed when stored, so a tolerance that covers the whole bench (the signature check itself is the same work).
RECORD_SCRIPT = """SELECT r.* FROM bench_webhook_payloads b,
       record_webhook_event(b.body, b.signature, false, 86400) r
 WHERE b.n = (SELECT nextval('bench_webhook_seq'));
"""


# -- the events ---------------------------------------------------------------------------------------
def session_rows(conn, first: int, count: int) -> list[tuple]:
    return conn.execute(
        """SELECT s.id, s.user_id, s.subscription_plan, s.plan_price, s.currency, s.stripe_session_id,
                  stripe_amount_minor_units(s.plan_price, s.currency)
             FROM generate_series(%s::bigint, %s::bigint) AS n
             JOIN payment_checkout_sessions s ON s.id = md5('webhook/s/' || n)::uuid ORDER BY n""",
        (first, first + count - 1),
    ).fetchall()


def event_body(n: int, row: tuple, tag: str) -> bytes:
    """A paid checkout.session.completed for one seeded row, shaped like Stripe's (about 700 bytes)."""
    sid, user_id, plan, _price, currency, stripe_id, amount = row
    return json.dumps(
        {
            "id": f"evt_bench_{tag}_{n}",
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": stripe_id,
                    "object": "checkout.session",
                    "amount_subtotal": amount,
                    "amount_total": amount,
                    "currency": currency.strip().lower(),
                    "customer": f"cus_bench_{n}",
                    "client_reference_id": str(sid),
                    "livemode": False,
                    "metadata": {"userId": str(user_id), "plan": plan, "checkoutSessionId": str(sid)},
                    "mode": "subscription",
                    "payment_status": "paid",
                    "status": "complete",
                }
            },
        },
        separators=(",", ":"),
    ).encode()


def signed_request(body: bytes, host: str, timestamp: int) -> bytes:
    """The whole HTTP/1.1 request, signed the way Stripe signs: v1 = HMAC-SHA256(secret, "t.body")."""
    mac = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    head = (
        f"POST /api/payments/webhook HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
        f"Content-Type: application/json; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        f"Stripe-Signature: t={timestamp},v1={mac}\r\n\r\n"
    )
    return head.encode() + body


# -- the client ---------------------------------------------------------------------------------------
_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


def deliver(
    host: str, port: int, requests: list[bytes], clients: int
) -> tuple[float, list[float], list[str]]:
    """(seconds, latencies in seconds, failures) of sending every request over `clients` keep-alive
    connections, closed loop: each connection sends its next request when the answer to the last is in.

    One thread and a selector over plain sockets, so the load generator takes as little of the machine's
    cores as it can (about a third of what asyncio streams took); the server is what is measured.
    """
    queue = list(reversed(requests))
    latencies: list[float] = []
    failures: list[str] = []
    selector = selectors.DefaultSelector()
    sockets = []
    start = time.perf_counter()
    for _ in range(min(clients, len(queue))):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sockets.append(sock)
        state = [b"", time.perf_counter()]  # bytes received of the current answer, when its request went
        sock.sendall(queue.pop())
        selector.register(sock, selectors.EVENT_READ, state)
    open_connections = len(sockets)
    try:
        while open_connections:
            for key, _ in selector.select():
                sock, state = key.fileobj, key.data
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("the server closed a keep-alive connection")
                buffer = state[0] + chunk
                split = buffer.find(b"\r\n\r\n")
                if split < 0:
                    state[0] = buffer
                    continue
                length = int(_CONTENT_LENGTH.search(buffer, 0, split + 2).group(1))
                if len(buffer) < split + 4 + length:
                    state[0] = buffer
                    continue
                now = time.perf_counter()
                latencies.append(now - state[1])
                head, body = buffer[:split], buffer[split + 4 : split + 4 + length]
                if not head.startswith(b"HTTP/1.1 200") or b'"outcome":"completed"' not in body.replace(
                    b" ", b""
                ):
                    failures.append((head.split(b"\r\n", 1)[0] + b" " + body[:200]).decode(errors="replace"))
                state[0] = buffer[split + 4 + length :]
                if queue:
                    state[1] = now
                    sock.sendall(queue.pop())
                else:
                    selector.unregister(sock)
                    open_connections -= 1
        return time.perf_counter() - start, latencies, failures
    finally:
        selector.close()
        for sock in sockets:
            sock.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# -- the server ---------------------------------------------------------------------------------------
def start_server(url: str, port: int, workers: int, log_path: Path, processes: int = 1) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "STRIPE_LIVEMODE": "false",
        "STRIPE_SECRET_KEY": "sk_test_bench",
    }
    env.pop("RUNNER_POOL_MAX_SIZE", None)
    log_file = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "--database-url",
            url,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--processes",
            str(processes),
        ],
        env=env,
        stdout=log_file,
        stderr=log_file,
        cwd=common.REPO,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise RuntimeError(f"runner serve did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)


def cpu_seconds(*pids: int) -> float:
    """User + system CPU time of processes so far (Linux /proc; 0 for one that is gone or not visible)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def backend_pids(url: str) -> list[int]:
    """The server processes serving `runner serve`'s pool (same host only: /proc)."""
    with common.connect(url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- one run of each ----------------------------------------------------------------------------------
def webhook_run(
    url: str,
    rows: list[tuple],
    n: int,
    clients: int,
    workers: int,
    tmp: Path,
    profile: str | None,
    processes: int = 1,
) -> tuple[float, list[float], dict[str, float]]:
    """(events/s, latencies, CPU ms per event of server, client and database backends) of delivering events for rows[WARMUP:WARMUP + n] after a warm-up on rows[:WARMUP]."""
    port = common.free_port()
    host = f"127.0.0.1:{port}"
    now = int(time.time())
    tag = f"{now}"
    requests = [
        signed_request(event_body(i, row, tag), host, now) for i, row in enumerate(rows[: WARMUP + n])
    ]
    proc = start_server(url, port, workers, tmp / "serve.log", processes)
    profiler = None
    try:
        _, _, failures = deliver("127.0.0.1", port, requests[:WARMUP], clients)
        if failures:
            raise RuntimeError(f"warm-up deliveries failed: {failures[:3]}")
        if profile:
            profiler = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "-o",
                    profile,
                    "-p",
                    str(proc.pid),
                    "--subprocesses",
                    "-r",
                    "200",
                    "--gil",
                    "--nonblocking",
                    "-f",
                    "speedscope" if profile.endswith(".json") else "flamegraph",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        backends, servers = backend_pids(url), common.process_tree(proc.pid)
        server_cpu, client_cpu, db_cpu = cpu_seconds(*servers), time.process_time(), cpu_seconds(*backends)
        seconds, latencies, failures = deliver("127.0.0.1", port, requests[WARMUP:], clients)
        server_cpu, client_cpu = cpu_seconds(*servers) - server_cpu, time.process_time() - client_cpu
        db_cpu = cpu_seconds(*backends) - db_cpu
    finally:
        if profiler:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        stop_server(proc)
    if failures:
        raise RuntimeError(
            f"{len(failures)} of {n} deliveries failed, e.g. {failures[:3]}\n"
            f"{(tmp / 'serve.log').read_text()[-2000:]}"
        )
    with common.connect(url) as conn:
        done = conn.execute(
            "SELECT (SELECT count(*) FROM webhook_events WHERE status = 'processed' AND outcome = 'completed'"
            "        AND stripe_event_id LIKE 'evt_bench_%%'),"
            " (SELECT count(*) FROM payment_checkout_sessions WHERE stripe_session_id LIKE 'cs_test_webhook_%%'"
            "  AND status = 'completed')"
        ).fetchone()
    if done != (WARMUP + n, WARMUP + n):
        raise RuntimeError(f"expected {WARMUP + n} processed events and completed sessions, found {done}")
    return (
        n / seconds,
        latencies,
        {"server": server_cpu * 1000 / n, "client": client_cpu * 1000 / n, "database": db_cpu * 1000 / n},
    )


def pgbench_run(url: str, script: Path, n: int, clients: int) -> tuple[float, float]:
    """(tps, mean latency ms) of pgbench completing n distinct sessions."""
    per_client = n // clients
    tps, latency = pgbench(url, script, clients, "-t", str(per_client))
    with common.connect(url) as conn:
        done = conn.execute(
            "SELECT count(*) FROM payment_checkout_sessions WHERE stripe_session_id LIKE "
            "'cs_test_webhook_%' AND status = 'completed'"
        ).fetchone()[0]
    if done != per_client * clients:
        raise RuntimeError(f"pgbench completed {done} sessions, expected {per_client * clients}")
    return tps, latency


def disable_rollup(url: str) -> None:
    """Turn off the rollup's statement triggers (a diagnostic: what the hot rollup rows cost)."""
    with common.connect(url) as conn:
        for (name,) in conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'payment_checkout_sessions'"
            "::regclass AND tgname LIKE '%%rollup%%'"
        ).fetchall():
            conn.execute(f"ALTER TABLE payment_checkout_sessions DISABLE TRIGGER {name}")


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--size", default=None, help="background sessions to generate first (default 100k)")
        p.add_argument(
            "--events",
            type=int,
            default=None,
            help="timed deliveries (and pgbench transactions) per run (default 10000; --quick 3000)",
        )
        p.add_argument("--clients", type=int, default=16, help="concurrent connections (default 16)")
        p.add_argument(
            "--workers",
            type=int,
            default=None,
            help="runner serve --workers: threads per process (default: --clients / --processes)",
        )
        p.add_argument("--processes", type=int, default=1, help="runner serve --processes (default 1)")
        p.add_argument("--runs", type=int, default=None, help="runs of each side (default 3; --quick 2)")
        p.add_argument(
            "--no-diagnose",
            dest="diagnose",
            action="store_false",
            help="skip the diagnostic runs of both sides with the rollup's statement triggers disabled "
            "(they show what the shared rollup rows cost, and the service's own ceiling)",
        )
        p.add_argument(
            "--profile",
            metavar="PATH",
            help="py-spy record the server (threads holding the GIL: its CPU) during the first webhook run; "
            "speedscope if PATH ends in .json, else a flame graph (pip install py-spy)",
        )

    args = common.arguments(__doc__.splitlines()[0], extra, argv)
    size = parse_size(args.size or "100k")
    n = args.events or (3000 if args.quick else 10000)
    n -= n % args.clients
    runs = args.runs or (2 if args.quick else 3)
    workers = args.workers or max(1, args.clients // args.processes)
    admin = common.server_url(args.database_url)
    variants = [False, True] if args.diagnose else [False]

    template, url = common.create_database(admin, prefix="bench_webhook_tpl")
    samples: dict[bool, dict[str, list[float]]] = {
        v: {
            k: []
            for k in (
                "rate",
                "p50",
                "p99",
                "server_cpu",
                "client_cpu",
                "database_cpu",
                "tps",
                "tps_latency",
                "sql_tps",
            )
        }
        for v in variants
    }
    try:
        common.apply_project(url)
        with common.connect(url) as conn:
            conn.execute("SELECT set_webhook_secret(%s)", (SECRET,))  # the database checks signatures too
            g = generate(conn, size, seed=SEED)
            with conn.transaction():
                history = conn.execute(HISTORY_SQL).rowcount
                conn.execute(SEED_SQL.replace("%(n)s", str(WARMUP + n)).replace("%%", "%"))
            conn.execute("VACUUM (ANALYZE)")
            rows = session_rows(conn, 1, WARMUP + n)
            conn.execute(
                "CREATE TABLE bench_webhook_payloads (n BIGINT PRIMARY KEY, body TEXT, signature TEXT)"
            )
            signed_at = int(time.time())
            with conn.cursor().copy("COPY bench_webhook_payloads FROM STDIN") as copy:
                for i, row in enumerate(rows[:n], start=1):
                    body = event_body(i, row, "sql")
                    mac = hmac.new(
                        SECRET.encode(), f"{signed_at}.".encode() + body, hashlib.sha256
                    ).hexdigest()
                    copy.write_row((i, body.decode(), f"t={signed_at},v1={mac}"))
            conn.execute("VACUUM (ANALYZE) bench_webhook_payloads")
        common.log(
            f"  generated {g.sessions:,} sessions / {g.users:,} users and the completed ones' events and "
            f"emails ({history:,}); seeded {WARMUP + n:,} pending "
            f"sessions linked to Stripe ids; {args.clients} connections, runner serve --processes {args.processes} --workers {workers}"
        )
        with tempfile.TemporaryDirectory(prefix="bench_webhook_") as tmpdir:
            tmp = Path(tmpdir)
            script, record_script = tmp / "complete.sql", tmp / "record.sql"
            script.write_text(PGBENCH_SCRIPT)
            record_script.write_text(RECORD_SCRIPT)
            for run in range(runs):
                for no_rollup in variants:
                    got = samples[no_rollup]
                    with common.scratch_database(admin, "bench_webhook", template) as run_url:
                        if no_rollup:
                            disable_rollup(run_url)
                        rate, latencies, cpu = webhook_run(
                            run_url,
                            rows,
                            n,
                            args.clients,
                            workers,
                            tmp,
                            args.profile if run == 0 and not no_rollup else None,
                            args.processes,
                        )
                    with common.scratch_database(admin, "bench_webhook", template) as run_url:
                        if no_rollup:
                            disable_rollup(run_url)
                        tps, tps_latency = pgbench_run(run_url, script, n, args.clients)
                    with common.scratch_database(admin, "bench_webhook", template) as run_url:
                        if no_rollup:
                            disable_rollup(run_url)
                        sql_tps, _ = pgbench_run(run_url, record_script, n, args.clients)
                    for key, value in (
                        ("rate", rate),
                        ("p50", percentile(latencies, 50) * 1000),
                        ("p99", percentile(latencies, 99) * 1000),
                        ("server_cpu", cpu["server"]),
                        ("client_cpu", cpu["client"]),
                        ("database_cpu", cpu["database"]),
                        ("tps", tps),
                        ("tps_latency", tps_latency),
                        ("sql_tps", sql_tps),
                    ):
                        got[key].append(value)
                    common.log(
                        f"  run {run + 1}/{runs}{' (rollup triggers off)' if no_rollup else ''}: webhook "
                        f"{rate:,.0f} events/s, p50 {got['p50'][-1]:.1f} ms, p99 {got['p99'][-1]:.1f} ms, "
                        f"CPU ms/event: server {cpu['server']:.2f}, database {cpu['database']:.2f}, client "
                        f"{cpu['client']:.2f}; pgbench "
                        f"complete_checkout_session {tps:,.0f} tps ({tps_latency:.2f} ms), "
                        f"record_webhook_event {sql_tps:,.0f} tps"
                    )
    finally:
        common.drop_database(admin, template)

    results: list[common.Result] = []
    for no_rollup in variants:
        got = samples[no_rollup]
        suffix = " (rollup triggers off)" if no_rollup else ""
        params = {
            "clients": args.clients,
            "processes": args.processes,
            "workers": workers,
            "events": n,
            "warmup": WARMUP,
            "generated_sessions": size,
            "cpus": os.cpu_count(),
            "server_cpu_ms_per_event": [round(v, 3) for v in got["server_cpu"]],
            "client_cpu_ms_per_event": [round(v, 3) for v in got["client_cpu"]],
            "database_cpu_ms_per_event": [round(v, 3) for v in got["database_cpu"]],
        }
        base = common.result(
            f"complete_checkout_session, pgbench {args.clients} clients (ceiling){suffix}",
            GROUP,
            got["tps"],
            unit="tps",
            params={**params, "latency_ms": [round(v, 2) for v in got["tps_latency"]]},
        )
        sql = common.result(
            f"record_webhook_event, pgbench {args.clients} clients{suffix}",
            GROUP,
            got["sql_tps"],
            unit="tps",
            baseline=base,
            params=params,
            note="the webhook's SQL alone: the same call on stored payloads",
        )
        rate = common.result(
            f"signed webhook deliveries, {args.clients} connections{suffix}",
            GROUP,
            got["rate"],
            unit="tps",
            baseline=base,
            params=params,
            note=f"{statistics.median(got['rate']) / statistics.median(got['sql_tps']):.2f}x of "
            "record_webhook_event via pgbench",
        )
        if not no_rollup:
            rate.aim = f">= {RATE_AIM:,.0f}/s and >= {RATIO_AIM:.0%} of ceiling"
            rate.aim_met = rate.median >= RATE_AIM and rate.ratio is not None and rate.ratio >= RATIO_AIM
        results += [
            base,
            sql,
            rate,
            common.result(f"webhook latency p50{suffix}", GROUP, got["p50"], params=params),
            common.result(f"webhook latency p99{suffix}", GROUP, got["p99"], params=params),
        ]
    common.print_table(results)
    if args.json:
        common.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
