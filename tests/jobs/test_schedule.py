"""The foreground scheduler: cron expressions, and a simulated day of running (a real clock is not needed
to test *when* jobs run; the jobs themselves are real in tests/jobs/test_jobs_cli.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runner.errors import JobOptionError
from runner.jobs import schedule
from runner.jobs.schedule import Cron
from runner.jobs.tasks import JOBS


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "expression, after, expected",
    [
        ("0 * * * *", "2026-01-07 00:59:30", "2026-01-07 01:00:00"),
        ("0 * * * *", "2026-01-07 01:00:00", "2026-01-07 02:00:00"),  # strictly after
        ("0 */6 * * *", "2026-01-07 06:00:00", "2026-01-07 12:00:00"),
        ("0 */6 * * *", "2026-01-07 18:00:01", "2026-01-08 00:00:00"),
        ("30 3 * * 0", "2026-01-07 12:00:00", "2026-01-11 03:30:00"),  # Wednesday -> Sunday
        ("30 3 * * 7", "2026-01-07 12:00:00", "2026-01-11 03:30:00"),  # 7 is Sunday too
        ("*/5 * * * *", "2026-01-07 10:02:59", "2026-01-07 10:05:00"),
        ("0 9 1 * 1", "2026-06-02 00:00:00", "2026-06-08 09:00:00"),  # both day fields: either matches
        ("15,45 8-9 * * *", "2026-01-07 08:45:00", "2026-01-07 09:15:00"),
        ("0 0 29 2 *", "2026-03-01 00:00:00", "2028-02-29 00:00:00"),
    ],
)
def test_next_after(expression, after, expected):
    assert Cron.parse(expression).next_after(at(after)) == at(expected)


@pytest.mark.parametrize(
    "expression, message",
    [
        ("* * * *", "needs 5 fields"),
        ("60 * * * *", "cron minute field '60': values must be within 0-59"),
        ("*/0 * * * *", "values must be within"),
        ("a * * * *", "not a number, range or \\*/step"),
        ("0 0 31 2 *", "never matches"),
    ],
)
def test_bad_cron_expressions(expression, message):
    with pytest.raises(JobOptionError, match=message):
        Cron.parse(expression).next_after(at("2026-01-01 00:00:00"))


def test_default_schedules_parse():
    assert {name: Cron.parse(job.schedule).expression for name, job in JOBS.items()} == {
        "expire": "0 * * * *",
        "remind": "0 */6 * * *",
        "cleanup": "30 3 * * 0",
        "send-email": "*/5 * * * *",
        "rollup": "*/5 * * * *",
    }


class FakeClock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_jobs_run_on_time_and_a_failing_job_does_not_stop_the_others():
    clock = FakeClock(at("2026-01-04 00:59:30"))
    ran: list[tuple[str, str]] = []
    errors: list[str] = []

    def run_job(name: str) -> None:
        ran.append((name, clock().strftime("%H:%M")))
        clock.sleep(5)  # jobs take time
        if name == "flaky":
            raise RuntimeError("SMTP is down")

    runs = schedule.run(
        run_job,
        {"hourly": "0 * * * *", "flaky": "*/20 * * * *"},
        duration=2 * 3600,
        clock=clock,
        sleep=clock.sleep,
        on_error=lambda name, exc: errors.append(f"{name}: {exc}"),
    )

    assert ran == [
        ("hourly", "01:00"),
        ("flaky", "01:00"),
        ("flaky", "01:20"),
        ("flaky", "01:40"),
        ("hourly", "02:00"),
        ("flaky", "02:00"),
        ("flaky", "02:20"),
        ("flaky", "02:40"),
    ]
    assert runs == 8
    assert errors == ["flaky: SMTP is down"] * 6
    assert clock() == at("2026-01-04 02:59:30")


def test_run_now_and_max_runs():
    clock = FakeClock(at("2026-01-04 10:07:00"))
    ran = []
    runs = schedule.run(
        lambda name: ran.append((name, clock().strftime("%H:%M"))),
        {"a": "0 * * * *", "b": "30 3 * * 0"},
        run_now=True,
        max_runs=3,
        clock=clock,
        sleep=clock.sleep,
    )
    assert (runs, ran) == (3, [("a", "10:07"), ("b", "10:07"), ("a", "11:00")])


def test_an_overrunning_job_skips_the_missed_slots_instead_of_piling_up():
    clock = FakeClock(at("2026-01-04 00:59:00"))
    ran = []

    def slow(name):
        ran.append(clock().strftime("%H:%M"))
        clock.sleep(3 * 3600 + 60)

    schedule.run(slow, {"x": "0 * * * *"}, max_runs=2, clock=clock, sleep=clock.sleep)
    assert ran == ["01:00", "05:00"]


def test_nothing_to_schedule_is_an_error():
    with pytest.raises(JobOptionError, match="no jobs to schedule"):
        schedule.run(lambda name: None, {})
