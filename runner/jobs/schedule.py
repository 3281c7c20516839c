"""A foreground scheduler for platforms without cron: runs each job on its cron schedule, in UTC.

Jobs run one at a time in this process; each still takes its own advisory lock, so a second scheduler (or
cron on another machine) never runs the same job twice at once. A job that fails is logged and reported,
and the scheduler carries on. A run that overruns the next slot does not pile up: the slot is skipped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from runner.errors import JobOptionError

log = logging.getLogger(__name__)

# field name, lowest, highest
FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression (minute hour day-of-month month day-of-week): *, */n, a, a-b, a-b/n, lists."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        parts = expression.split()
        if len(parts) != 5:
            raise JobOptionError(
                f"cron expression {expression!r} needs 5 fields (minute hour day month weekday)"
            )
        values = [_field(p, *spec) for p, spec in zip(parts, FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in values[4])
        return cls(expression, *values[:4], weekdays, parts[2] == "*", parts[4] == "*")

    def matches(self, at: datetime) -> bool:
        if at.minute not in self.minutes or at.hour not in self.hours or at.month not in self.months:
            return False
        day_ok = at.day in self.days
        weekday_ok = (at.isoweekday() % 7) in self.weekdays
        # Cron's rule: when both day fields are restricted, either may match.
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def next_after(self, at: datetime) -> datetime:
        """The first matching minute strictly after `at`."""
        candidate = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(366 * 24 * 60 * 5):  # leap-day schedules can be years apart
            if self.matches(candidate):
                return candidate
            candidate += timedelta(minutes=1)
        raise JobOptionError(f"cron expression {self.expression!r} never matches")


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    found: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                start, end = low, high
            elif "-" in base:
                start, end = (int(x) for x in base.split("-", 1))
            else:
                start = int(base)
                end = high if step_text else start
        except ValueError:
            raise JobOptionError(f"cron {name} field {text!r}: not a number, range or */step") from None
        if step < 1 or not (low <= start <= end <= high):
            raise JobOptionError(f"cron {name} field {text!r}: values must be within {low}-{high}")
        found.update(range(start, end + 1, step))
    return frozenset(found)


def run(
    run_job: Callable[[str], object],
    schedules: dict[str, str],
    *,
    run_now: bool = False,
    max_runs: int | None = None,
    duration: float | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    stop: threading.Event | None = None,
    sleep: Callable[[float], object] | None = None,
    on_error: Callable[[str, Exception], None] | None = None,
) -> int:
    """Run each job (name -> cron expression) on its schedule until stopped, `max_runs` job runs or
    `duration` seconds; returns how many runs there were. `run_job(name)` runs one job; its exceptions are
    passed to `on_error` (or logged) and the schedule goes on."""
    if not schedules:
        raise JobOptionError("no jobs to schedule")
    crons = {name: Cron.parse(expr) for name, expr in schedules.items()}
    stop = stop or threading.Event()
    sleep = sleep or stop.wait
    start = clock()
    until = start + timedelta(seconds=duration) if duration is not None else None
    due = {name: start if run_now else cron.next_after(start) for name, cron in crons.items()}
    runs = 0
    for name, at in sorted(due.items(), key=lambda item: item[1]):
        log.info("schedule: %s (%s) next at %s", name, crons[name].expression, at.isoformat())
    while not stop.is_set() and (max_runs is None or runs < max_runs):
        name = min(due, key=lambda n: due[n])
        now = clock()
        if until is not None and now >= until:
            break
        wait = (due[name] if until is None else min(due[name], until)) - now
        if wait > timedelta(0):
            sleep(wait.total_seconds())
            continue
        try:
            run_job(name)
        except Exception as exc:  # noqa: BLE001 - the point of a scheduler is to outlive its jobs
            if on_error is not None:
                on_error(name, exc)
            else:
                log.error("schedule: job %s failed: %s", name, exc)
        runs += 1
        due[name] = crons[name].next_after(max(clock(), due[name]))
    return runs
