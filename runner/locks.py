"""PostgreSQL advisory locks: one key per kind of work, so two applies (or two runs of a job) never overlap."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from runner.errors import LockTimeout

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

# Keys are two int4s: the project's class, then one key per kind of work.
LOCK_CLASS = 0x43534553  # "CSES"
APPLY_LOCK = 1
# Taken inside fold_checkout_session_rollup() and rebuild_checkout_session_rollup() (transaction-scoped),
# so folds and rebuilds take turns; sql/functions/checkout_session_rollup.sql spells it out.
ROLLUP_FOLD_LOCK = 2
# Transaction-scoped, taken by `runner schedule --pg-cron` (runner/jobs/pg_cron.py): two installs take turns.
SCHEDULE_LOCK = 3
# Session-scoped, held by `runner demo` (runner/quality/demo.py) while it fills a database: a second one fails.
DEMO_LOCK = 4
# Jobs use 10 and up, one key each. Keep a job's key once shipped: a running old version and a new one must
# contend for the same lock.
JOB_LOCKS: dict[str, int] = {"expire": 10, "remind": 11, "cleanup": 12, "send-email": 13, "rollup": 14}

# One Stripe event id: (WEBHOOK_EVENT_LOCK_CLASS, hashtext(event id)), transaction-scoped, taken in SQL by
# record_webhook_event, process_webhook_event and fail_webhook_event (sql/macros/common.sql,
# lock_webhook_event), so concurrent deliveries of one event process it once. A class of its own: a hash
# can never collide with the keys above.
WEBHOOK_EVENT_LOCK_CLASS = 0x43534557  # "CSEW"
# One user's Stripe Checkout Session quota: (STRIPE_QUOTA_LOCK_CLASS, hashtext(user id)), transaction-scoped,
# taken by take_stripe_session_quota (sql/functions/take_stripe_session_quota.sql), so concurrent creates of
# one user count one at a time.
STRIPE_QUOTA_LOCK_CLASS = 0x43534551  # "CSEQ"


def template_globals() -> dict[str, object]:
    """The keys above for the SQL templates (`{{ locks.lock_class }}`, ...): SQL that takes a lock names the
    same numbers as the Python that takes it, from this one place."""
    return {
        "lock_class": LOCK_CLASS,
        "apply": APPLY_LOCK,
        "rollup_fold": ROLLUP_FOLD_LOCK,
        "webhook_event_class": WEBHOOK_EVENT_LOCK_CLASS,
        "jobs": dict(JOB_LOCKS),
    }


def lock_holder(conn: psycopg.Connection, key: int) -> str:
    """Who holds lock `key`: pid, application name, user, client, since when."""
    row = conn.execute(
        """SELECT a.pid, coalesce(nullif(a.application_name, ''), '?'), a.usename,
                  coalesce(host(a.client_addr), 'local socket'), a.backend_start
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s
              AND l.objsubid = 2
            LIMIT 1""",
        (LOCK_CLASS, key),
    ).fetchone()
    if row is None:
        return "an unknown session"
    return f"pid {row[0]} ({row[1]}, user {row[2]}, from {row[3]}, connected {row[4]:%Y-%m-%d %H:%M:%S %Z})"


@contextmanager
def advisory_lock(conn: psycopg.Connection, key: int, timeout: float, what: str) -> Iterator[float]:
    """Hold session advisory lock `key`, waiting up to `timeout` seconds (0: do not wait).

    Yields how long it waited. Raises LockTimeout naming the holder and how to end it.
    """
    start = time.monotonic()
    announced = False
    while not conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, key)).fetchone()[0]:
        waited = time.monotonic() - start
        if waited >= timeout:
            holder = lock_holder(conn, key)
            held = f"for over {timeout:g}s" if timeout else "now"
            raise LockTimeout(
                f"another {what} holds the lock {held}: {holder}. Wait for it, or if it is stuck end it "
                f"with: SELECT pg_terminate_backend(<pid>);",
                holder=holder,
            )
        if not announced:
            log.info("waiting for the %s lock held by %s", what, lock_holder(conn, key))
            announced = True
        time.sleep(min(0.1, max(timeout - waited, 0.001)))
    waited = time.monotonic() - start
    try:
        yield waited
    finally:
        if not conn.closed and not conn.broken:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, key))
