"""The jobs' catalogue: names, lock keys, default schedules, when each is overdue, batch defaults.

The one place these facts live: `runner job` and `runner schedule` (defaults and help), `runner doctor`
(overdue checks), the pg_cron schedule and the docs read them from here. Data only: no database, no I/O.

`runner job list` prints `listing()` without importing click (runner/launch.py), so this module imports
nothing costly at the top: no dataclasses (it imports inspect), no runner.locks (logging).
"""

from __future__ import annotations

import datetime as dt

EXIT_SKIPPED = 6


class Job:
    """A scheduled job: its name, its default schedule (cron syntax), what it does, when it is overdue."""

    __slots__ = ("name", "schedule", "every", "description", "overdue_after")

    def __init__(
        self,
        name: str,
        schedule: str,
        every: str,
        description: str,
        # When `runner doctor` calls the job overdue: a few missed runs, not one late one.
        overdue_after: dt.timedelta = dt.timedelta(hours=2),
    ) -> None:
        self.name = name
        self.schedule = schedule
        self.every = every
        self.description = description
        self.overdue_after = overdue_after

    @property
    def lock_key(self) -> int:
        """Its advisory lock key: runner/locks.py's JOB_LOCKS, the one place SQL and Python read them from."""
        from runner.locks import JOB_LOCKS

        return JOB_LOCKS[self.name]

    def __repr__(self) -> str:
        return f"Job({self.name!r}, {self.schedule!r}, {self.every!r})"


JOBS: dict[str, Job] = {
    "expire": Job(
        "expire",
        "0 * * * *",
        "hourly",
        "Expire pending checkout sessions past expires_at, in batches.",
        dt.timedelta(hours=2),
    ),
    "remind": Job(
        "remind",
        "0 */6 * * *",
        "every 6 hours",
        "Queue one reminder per abandoned checkout (6-24 h old, < 3 attempts), then send the outbox.",
        dt.timedelta(hours=13),
    ),
    "cleanup": Job(
        "cleanup",
        "30 3 * * 0",
        "weekly, Sunday 03:30",
        "Move completed sessions older than the retention to payment_checkout_sessions_archive.",
        dt.timedelta(days=8),
    ),
    "send-email": Job(
        "send-email",
        "*/5 * * * *",
        "every 5 minutes",
        "Deliver the email outbox (verification and reminder emails) over SMTP.",
        dt.timedelta(minutes=30),
    ),
    "rollup": Job(
        "rollup",
        "*/5 * * * *",
        "every 5 minutes",
        "Fold the rollup's appended deltas into checkout_session_rollup, in batches.",
        dt.timedelta(minutes=30),
    ),
}

DEFAULT_EXPIRE_BATCH = 10_000
# Delta rows per fold transaction: a few hundred milliseconds at most, and it locks nothing writers wait for.
DEFAULT_FOLD_BATCH = 100_000
DEFAULT_CLEANUP_BATCH = 1_000
# Batches start at FIRST_BATCH rows and adapt so each transaction takes about TARGET_BATCH_SECONDS.
FIRST_BATCH = 1_000
# 0.25 s leaves room under the 1 s lock-hold ceiling for a slow batch on a busy machine (a 0.5 s
# target peaked at 1.06 s in the 10M benchmark).
TARGET_BATCH_SECONDS = 0.25


def listing(fmt: str = "text") -> str:
    """`runner job list`: each job, its default schedule and what it does; fmt "text" or "json"."""
    rows = [
        {"name": j.name, "schedule": j.schedule, "every": j.every, "description": j.description}
        for j in JOBS.values()
    ]
    if fmt == "json":
        import json

        return json.dumps(rows, indent=2, default=str)
    return "\n".join(f"{r['name']:<11} {r['schedule']:<12} {r['every']:<22} {r['description']}" for r in rows)
