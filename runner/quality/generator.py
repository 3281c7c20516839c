"""Synthetic checkout sessions for an applied database, set-based (INSERT ... SELECT generate_series).

The benchmarks (bench/generate.py) and `runner demo` (runner/quality/demo.py) fill databases with it:

    from runner.quality.generator import generate; generate(conn, 1_000_000)   # into an applied database

Shape of the data (deterministic for a seed and `now`; "random" below is a hash of the row number and the seed):
- users first: sessions / 4 of them, ids ``md5('<seed>/u/<n>')::uuid`` (see `user_id_sql`), so a benchmark
  can name user n without a lookup; email ``user<n>@example.com``.
- several sessions per user, geometric: every user has one, 75% a second, 56% a third... (mean 4).
- a user's sessions are spread over the `days` (default 365) before `now`, in order; plans weighted
  55/35/10 over the catalogue's active plans (prices and currency from `subscription_plans`).
- statuses: earlier sessions of a user are completed 33% / expired 52% / canceled 10% / failed 5% (those
  still inside their expiry window: completed 60%, canceled 30%, failed 10%, never expired); the
  latest one is pending 60% while still inside its expiry window (else completed 35%, canceled 5%), and
  past it pending 2% (`stale_pending`: work for the expire job; what is not left pending is expired),
  completed 35%, expired 50%, canceled 9%, failed 4%.
  Only a user's latest session may be pending, so the one-pending-per-(user, plan) index always holds.
- completed rows have completed_at (30 s to 2 h after creation, never in the future); the insert trigger
  fills expires_at from created_at; Stripe ids (unique) on pending-with-Stripe, completed, canceled,
  failed and 70% of expired rows.

Rows go in chunks (one transaction each), so the rollup's statement triggers and progress stay bounded.
For 1M rows and up the secondary indexes are dropped for the load and rebuilt afterwards (a bulk load's
usual trick; `rebuild_indexes=False` keeps them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner.errors import ProjectError

if TYPE_CHECKING:
    import psycopg

SESSIONS_PER_USER = 4  # mean of the geometric distribution below
REPEAT = 1 - 1 / SESSIONS_PER_USER  # share of users with k sessions who have a (k+1)-th
PLAN_WEIGHTS = (0.55, 0.35, 0.10)
CHUNK = 1_000_000
TABLE = "payment_checkout_sessions"


@dataclass
class Generated:
    users: int
    sessions: int
    seconds: float
    seed: int
    by_status: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)


def parse_size(text: str) -> int:
    """100k, 1M, 10M, 2500 -> int."""
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if factor > 1 else text) * factor)


def user_id_sql(n: str, seed: str) -> str:
    """SQL expression of user n's id (n and seed are SQL expressions): the same in pgbench scripts."""
    return f"md5(({seed})::text || '/u/' || ({n})::text)::uuid"


def rounds(sessions: int) -> list[int]:
    """Users per round: round k holds the k-th session of users 0..n_k-1; sums to `sessions` exactly."""
    n_users = max(1, round(sessions * (1 - REPEAT)))
    sizes: list[int] = []
    k = 0
    while True:
        size = int(n_users * REPEAT**k)
        if size < 1:
            break
        sizes.append(size)
        k += 1
    total = sum(sizes)
    if total > sessions:  # trim the last rounds
        while total > sessions:
            cut = min(sizes[-1], total - sessions)
            sizes[-1] -= cut
            total -= cut
            if sizes[-1] == 0:
                sizes.pop()
    else:  # top up the first round (more users with one session)
        sizes[0] += sessions - total
    sizes.sort(reverse=True)
    return sizes


def _plans(conn: psycopg.Connection) -> tuple[list[str], list[Any], list[str], list[float]]:
    rows = conn.execute(
        "SELECT code, price, currency FROM subscription_plans WHERE active ORDER BY price, code"
    ).fetchall()
    if not rows:
        raise ProjectError(
            "no active plans in subscription_plans: apply the project first "
            "(the plan catalogue is [[plans]] in sql/project.toml)"
        )
    weights = list(PLAN_WEIGHTS[: len(rows)]) if len(rows) <= len(PLAN_WEIGHTS) else [1.0] * len(rows)
    weights += [weights[-1]] * (len(rows) - len(weights))
    total = sum(weights)
    lower, acc = [], 0.0
    for w in weights:
        lower.append(acc / total)
        acc += w
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], lower


def _columns(conn: psycopg.Connection) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND table_schema = "
            "current_schema()",
            (TABLE,),
        ).fetchall()
    }


# The session row of global number i. `k` = round (1-based), `u` = user number, `c` = sessions of u,
# `r1..r6` = independent uniform [0, 1) draws from hashes of (i, seed).
_SESSION_SELECT = """
WITH s AS (
  SELECT i, k, i - (%(offsets)s::bigint[])[k] AS u
    FROM (SELECT i, width_bucket(i, %(offsets)s::bigint[]) AS k
            FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS i) g
), d AS (
  SELECT i, k, u,
         %(rounds)s - width_bucket(u, %(sizes_asc)s::bigint[]) AS c,
         (hashint8extended(i, %(seed)s * 7 + 1) & 2147483647)::float8 / 2147483648 AS r1,
         (hashint8extended(i, %(seed)s * 7 + 2) & 2147483647)::float8 / 2147483648 AS r2,
         (hashint8extended(i, %(seed)s * 7 + 3) & 2147483647)::float8 / 2147483648 AS r3,
         (hashint8extended(i, %(seed)s * 7 + 4) & 2147483647)::float8 / 2147483648 AS r4,
         (hashint8extended(i, %(seed)s * 7 + 5) & 2147483647)::float8 / 2147483648 AS r5,
         (hashint8extended(i, %(seed)s * 7 + 6) & 2147483647)::float8 / 2147483648 AS r6
    FROM s
), t AS (
  SELECT d.*, width_bucket(r2, %(plan_lower)s::float8[]) AS p,
         %(now)s::timestamptz - %(days)s * INTERVAL '1 day' * (1 - (k - 1 + r1) / c) AS created_at,
         (k = c) AS latest
    FROM d
), st AS (
  SELECT t.*,
         CASE
           WHEN latest AND created_at + %(expiry)s * INTERVAL '1 hour' > %(now)s::timestamptz THEN
             CASE WHEN r3 < 0.60 THEN 'pending' WHEN r3 < 0.95 THEN 'completed' ELSE 'canceled' END
           WHEN latest THEN
             CASE WHEN r3 < %(stale)s THEN 'pending' WHEN r3 < 0.02 THEN 'expired' WHEN r3 < 0.37 THEN 'completed' WHEN r3 < 0.87 THEN 'expired'
                  WHEN r3 < 0.96 THEN 'canceled' ELSE 'failed' END
           WHEN created_at + %(expiry)s * INTERVAL '1 hour' > %(now)s::timestamptz THEN
             -- an earlier session still inside its expiry window cannot have expired yet
             CASE WHEN r3 < 0.60 THEN 'completed' WHEN r3 < 0.90 THEN 'canceled' ELSE 'failed' END
           ELSE
             CASE WHEN r3 < 0.33 THEN 'completed' WHEN r3 < 0.85 THEN 'expired'
                  WHEN r3 < 0.95 THEN 'canceled' ELSE 'failed' END
         END AS status
    FROM t
)
SELECT md5(%(seed)s::text || '/s/' || i::text)::uuid AS id,
       {user_id} AS user_id,
       'user' || u || '@example.com' AS email,
       (%(plan_codes)s::text[])[p] AS subscription_plan,
       (%(plan_prices)s::numeric[])[p] AS plan_price,
       'stripe' AS payment_provider,
       CASE WHEN status <> 'expired' OR r4 < 0.7 THEN 'cs_test_' || md5(%(seed)s::text || '/cs/' || i::text)
       END AS stripe_session_id,
       status,
       created_at,
       CASE WHEN status = 'completed' THEN
         created_at + least(INTERVAL '30 seconds' + r5 * INTERVAL '2 hours',
                            greatest(%(now)s::timestamptz - created_at, INTERVAL '0'))
       END AS completed_at,
       created_at + %(expiry)s * INTERVAL '1 hour' AS expires_at,
       CASE WHEN r6 < 0.8 THEN 1 WHEN r6 < 0.95 THEN 2 ELSE 3 END AS attempts,
       (%(plan_currencies)s::text[])[p] AS currency,
       CASE WHEN status = 'completed' THEN 'cus_' || left(md5(%(seed)s::text || '/cus/' || u::text), 14)
       END AS stripe_customer_id,
       CASE WHEN status <> 'expired' OR r4 < 0.7 THEN 'https://checkout.stripe.com/c/pay/cs_test_' || i
       END AS checkout_url,
       CASE WHEN status <> 'expired' OR r4 < 0.7 THEN 1 ELSE 0 END AS stripe_sessions_created
  FROM st
"""

_BASE_COLUMNS = [
    "id",
    "user_id",
    "email",
    "subscription_plan",
    "plan_price",
    "payment_provider",
    "stripe_session_id",
    "status",
    "created_at",
    "expires_at",
    "completed_at",
    "attempts",
    "currency",
    "stripe_customer_id",
    "checkout_url",
    "stripe_sessions_created",
]


def _secondary_indexes(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(name, definition) of the table's indexes that back no constraint (safe to drop and rebuild)."""
    return conn.execute(
        """SELECT c.relname, pg_get_indexdef(i.indexrelid)
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = to_regclass(%s)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
            ORDER BY c.relname""",
        (TABLE,),
    ).fetchall()


def generate(
    conn: psycopg.Connection,
    sessions: int,
    *,
    seed: int = 1,
    now: Any = None,
    rebuild_indexes: bool | None = None,
    chunk: int = CHUNK,
    progress: Any = None,
    triggers: bool = True,
    days: int = 365,
    stale_pending: float = 0.02,
) -> Generated:
    """Insert `sessions` checkout sessions (and their users) into the applied database of `conn`.

    `conn` must be in autocommit mode; each chunk commits on its own. `now` anchors the year of data
    (default: the server's now()). The database should hold no generated rows of the same seed yet.
    `triggers=False` (superuser only) loads the sessions with triggers and foreign-key checks off
    (session_replication_role = replica; the rows are consistent by construction), then rebuilds the
    rollup and activates the subscribers: about twice as fast at 10M rows on a busy machine.
    """
    if not conn.autocommit:
        raise ValueError("generate() needs an autocommit connection")
    started = time.perf_counter()
    phases: dict[str, float] = {}
    if now is None:
        now = conn.execute("SELECT now()").fetchone()[0]
    codes, prices, currencies, lower = _plans(conn)
    expiry = _expiry_hours(conn) or 24.0
    sizes = rounds(sessions)
    n_users = sizes[0]
    offsets = [0]
    for size in sizes[:-1]:
        offsets.append(offsets[-1] + size)
    columns = [c for c in _BASE_COLUMNS if c in _columns(conn)]
    select_columns = ", ".join(columns)
    query = _SESSION_SELECT.replace("{user_id}", user_id_sql("u", "%(seed)s"))
    insert = f"INSERT INTO {TABLE} ({select_columns}) SELECT {select_columns} FROM ({query}) q"

    t = time.perf_counter()
    conn.execute(
        f"""INSERT INTO users (id, email, subscription_status, created_at)
            SELECT {user_id_sql("n", "%(seed)s")}, 'user' || n || '@example.com', 'inactive',
                   %(now)s::timestamptz - (%(days)s + 1) * INTERVAL '1 day'
                     - INTERVAL '30 days' * ((hashint8extended(n, %(seed)s) & 2147483647)::float8 / 2147483648)
              FROM generate_series(0::bigint, %(n)s::bigint - 1) AS n""",
        {"seed": seed, "now": now, "n": n_users, "days": days},
    )
    phases["users"] = time.perf_counter() - t

    if rebuild_indexes is None:
        rebuild_indexes = sessions >= 1_000_000
    dropped: list[tuple[str, str]] = []
    if rebuild_indexes:
        dropped = _secondary_indexes(conn)
        for name, _ in dropped:
            conn.execute(f'DROP INDEX "{name}"')

    t = time.perf_counter()
    params = {
        "seed": seed,
        "now": now,
        "expiry": expiry,
        "offsets": offsets,
        "days": days,
        "stale": stale_pending,
        # Sessions of user u: c = rounds - (how many rounds k >= 2 have size <= u), and width_bucket
        # counts the thresholds <= u. With one round, nobody has a second session.
        "rounds": len(sizes),
        "sizes_asc": sorted(sizes[1:]) or [n_users + 1],
        "plan_codes": codes,
        "plan_prices": prices,
        "plan_currencies": currencies,
        "plan_lower": lower,
    }
    if not triggers:
        conn.execute("SET session_replication_role = replica")
    try:
        for lo in range(0, sessions, chunk):
            hi = min(sessions, lo + chunk)
            conn.execute(insert, {**params, "lo": lo, "hi": hi})
            if progress:
                progress(f"  sessions {hi:,}/{sessions:,} ({time.perf_counter() - t:.1f}s)")
    finally:
        if not triggers:
            conn.execute("RESET session_replication_role")
    phases["sessions"] = time.perf_counter() - t
    if not triggers and conn.execute("SELECT to_regproc('rebuild_checkout_session_rollup')").fetchone()[0]:
        t = time.perf_counter()
        conn.execute("SELECT rebuild_checkout_session_rollup()")
        phases["rollup"] = time.perf_counter() - t

    if dropped:
        t = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        for _name, definition in dropped:
            conn.execute(definition)
        conn.execute("RESET maintenance_work_mem")
        phases["indexes"] = time.perf_counter() - t

    t = time.perf_counter()
    # Users whose checkout completed are subscribers, as the webhook would have left them.
    conn.execute(
        """UPDATE users u SET subscription_status = 'active', subscription_plan = s.subscription_plan,
                  stripe_customer_id = s.stripe_customer_id, subscribed_at = s.completed_at
             FROM (SELECT DISTINCT ON (user_id) user_id, subscription_plan, stripe_customer_id, completed_at
                     FROM payment_checkout_sessions WHERE status = 'completed'
                    ORDER BY user_id, completed_at DESC) s
            WHERE u.id = s.user_id AND u.subscription_status = 'inactive'"""
    )
    phases["users_active"] = time.perf_counter() - t
    t = time.perf_counter()
    conn.execute(f"VACUUM (ANALYZE) {TABLE}")
    conn.execute("VACUUM (ANALYZE) users")
    phases["vacuum_analyze"] = time.perf_counter() - t
    by_status = dict(
        conn.execute(f"SELECT status, count(*) FROM {TABLE} GROUP BY status ORDER BY status").fetchall()
    )
    return Generated(
        users=n_users,
        sessions=sessions,
        seconds=time.perf_counter() - started,
        seed=seed,
        by_status=by_status,
        phases={k: round(v, 2) for k, v in phases.items()},
    )


def _expiry_hours(conn: psycopg.Connection) -> float | None:
    """The schema's default expiry, read by letting the insert trigger fill expires_at (rolled back)."""
    import psycopg

    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL session_replication_role = origin")
            uid = conn.execute(
                "INSERT INTO users (email) VALUES ('expiry-probe@example.com') RETURNING id"
            ).fetchone()[0]
            codes = conn.execute("SELECT code, price FROM subscription_plans WHERE active LIMIT 1").fetchone()
            row = conn.execute(
                f"""INSERT INTO {TABLE} (user_id, email, subscription_plan, plan_price, payment_provider,
                                         created_at)
                    VALUES (%s, 'expiry-probe@example.com', %s, %s, 'stripe', now())
                    RETURNING extract(epoch FROM expires_at - created_at) / 3600""",
                (uid, codes[0], codes[1]),
            ).fetchone()
            return float(row[0])
    except psycopg.Error:
        return None
