"""Every report answers the same numbers as the reference's own query for the same question, read in
the same transaction (so now() and CURRENT_DATE are the same), in several time zones; and an empty
database answers without dividing by zero."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest

from bench.reference import query
from runner.errors import ReportError, ReportParameterError
from runner.reporting import reports
from tests.reporting_seed import seed

# The reference's queries, verbatim: the one copy in docs/reference/queries.sql.
REF_CONVERSION_RATE = query("-- Conversion rate\n")
REF_ABANDONMENT_BY_PLAN = query("-- Abandonment by plan")
REF_REMINDERS = query("-- Find users who need reminders")
REF_REMINDER_CRON = query("INTERVAL '6 hours'")
REF_SESSIONS_TODAY = query("-- Sessions created today")
REF_COMPLETION_TODAY = query("-- Completion rate today")
REF_PENDING_OVER_1H = query("-- Pending sessions older than 1 hour")
REF_WEEKLY = query("GROUP BY DATE(created_at)")
REF_STUCK = query("-- Find pending sessions with Stripe ID")
REF_WEBHOOKS = query("-- Check webhook logs")
REF_BY_STATUS = query("-- Sessions by status")
REF_ABANDONMENT_AGE = query("-- Average time before abandonment")
# From the reference's prose ("Check database logs"), not one of its SQL blocks.
REF_DATABASE_ERRORS = "SELECT * FROM error_logs WHERE category = 'database'"

TIME_ZONES = ["UTC", "America/New_York", "Asia/Tokyo"]


@pytest.fixture
def seeded(conn: psycopg.Connection) -> psycopg.Connection:
    seed(conn)
    return conn


def both(conn, project, reference: str, report: str, params: dict | None = None, tz: str = "UTC"):
    """The reference query's rows and the report's records, read in one transaction."""
    with conn.transaction():
        conn.execute("SELECT set_config('TimeZone', %s, true)", (tz,))
        ref = conn.execute(reference).fetchall()
        ours = reports.run(conn, project, report, params).records()
    return ref, ours


@pytest.mark.parametrize("tz", TIME_ZONES)
def test_conversion_rate_equals_reference(seeded, project, tz):
    ref, ours = both(seeded, project, REF_CONVERSION_RATE, "conversion_rate", tz=tz)
    assert ours[0]["conversion_rate"] == ref[0][0]
    assert ours[0]["sessions"] > 0


def test_abandonment_by_plan_equals_reference(seeded, project):
    ref, ours = both(seeded, project, REF_ABANDONMENT_BY_PLAN, "abandonment_by_plan")
    assert sorted((r["subscription_plan"], r["total"], r["abandoned"]) for r in ours) == sorted(ref)
    assert len(ref) == 3


def test_reminder_candidates_equal_reference_and_its_cron_query(seeded, project):
    ref, ours = both(seeded, project, REF_REMINDERS, "reminder_candidates")
    assert [(r["user_id"], r["email"], r["subscription_plan"], r["created_at"]) for r in ours] == sorted(
        ref, key=lambda r: r[3]
    )
    assert ref
    ref, ours = both(
        seeded,
        project,
        REF_REMINDER_CRON,
        "reminder_candidates",
        {"min_age": "6 hours", "max_age": "24 hours"},
    )
    assert sorted((r["user_id"], r["email"], r["subscription_plan"]) for r in ours) == sorted(ref)


@pytest.mark.parametrize("tz", TIME_ZONES)
def test_daily_health_equals_reference(seeded, project, tz):
    with seeded.transaction():
        seeded.execute("SELECT set_config('TimeZone', %s, true)", (tz,))
        today = seeded.execute(REF_SESSIONS_TODAY).fetchone()[0]
        rate = seeded.execute(REF_COMPLETION_TODAY).fetchone()[0]
        pending = seeded.execute(REF_PENDING_OVER_1H).fetchone()[0]
        ours = reports.run(seeded, project, "daily_health").records()[0]
    assert (ours["sessions_today"], ours["completion_rate_today"], ours["pending_over_age"]) == (
        today,
        rate,
        pending,
    )
    assert today > 0


@pytest.mark.parametrize("tz", TIME_ZONES)
def test_weekly_report_equals_reference(seeded, project, tz):
    ref, ours = both(seeded, project, REF_WEEKLY, "weekly_report", tz=tz)
    columns = ("date", "total_sessions", "completed", "pending", "expired", "conversion_rate")
    assert [tuple(r[c] for c in columns) for r in ours] == ref
    assert len(ref) >= 7


def test_weekly_report_over_30_days_equals_the_reference_widened(seeded, project):
    ref, ours = both(
        seeded, project, REF_WEEKLY.replace("'7 days'", "'30 days'"), "weekly_report", {"days": "30"}
    )
    columns = ("date", "total_sessions", "completed", "pending", "expired", "conversion_rate")
    assert [tuple(r[c] for c in columns) for r in ours] == ref


def test_stuck_sessions_equal_reference(seeded, project):
    ref, ours = both(seeded, project, REF_STUCK, "stuck_sessions", {"limit": "100000"})
    assert sorted(r["id"] for r in ours) == sorted(r[0] for r in ref)
    assert ref


def test_recent_webhooks_equal_reference(seeded, project):
    ref, ours = both(seeded, project, REF_WEBHOOKS, "recent_webhooks")
    assert [r["id"] for r in ours] == [r[0] for r in ref]
    assert len(ref) == 10


@pytest.mark.parametrize("tz", TIME_ZONES)
def test_sessions_by_status_equals_reference(seeded, project, tz):
    ref, ours = both(seeded, project, REF_BY_STATUS, "sessions_by_status", tz=tz)
    assert sorted((r["status"], r["count"]) for r in ours) == sorted(ref)
    assert sum(r["share"] for r in ours) == pytest.approx(100, abs=0.05)


def test_abandonment_age_equals_reference(seeded, project):
    ref, ours = both(seeded, project, REF_ABANDONMENT_AGE, "abandonment_age")
    assert ours[0]["avg_minutes"] == ref[0][0]
    assert ref[0][0] is not None


def test_error_summary_counts_the_reference_rows(seeded, project):
    ref, ours = both(seeded, project, REF_DATABASE_ERRORS, "error_summary", {"days": "3650"})
    by_category = {r["category"]: r for r in ours}
    assert by_category["database"]["errors"] == len(ref)
    latest = max(ref, key=lambda r: r[4])
    assert by_category["database"]["last_message"] == latest[2]


def test_conversion_by_plan_equals_raw_query(seeded, project):
    raw = """SELECT subscription_plan, count(*), count(*) FILTER (WHERE status = 'completed'),
                    round(count(*) FILTER (WHERE status = 'completed') * 100.0 / count(*), 2)
               FROM payment_checkout_sessions WHERE created_at > now() - INTERVAL '30 days'
              GROUP BY 1"""
    ref, ours = both(seeded, project, raw, "conversion_by_plan")
    assert sorted(tuple(r.values()) for r in ours) == sorted(ref)


def test_retry_stats_equal_raw_query(seeded, project):
    raw = """SELECT count(*), count(*) FILTER (WHERE attempts > 1),
                    round(count(*) FILTER (WHERE attempts > 1) * 100.0 / count(*), 2),
                    round(avg(attempts), 2),
                    round(count(*) FILTER (WHERE attempts > 1 AND status = 'completed') * 100.0
                          / count(*) FILTER (WHERE attempts > 1), 2),
                    round(count(*) FILTER (WHERE attempts <= 1 AND status = 'completed') * 100.0
                          / count(*) FILTER (WHERE attempts <= 1), 2),
                    (SELECT count(*) FROM payment_checkout_stripe_sessions
                      WHERE linked_at > now() - INTERVAL '30 days'),
                    (SELECT count(*) FROM payment_checkout_stripe_sessions
                      WHERE linked_at > now() - INTERVAL '30 days' AND replaced_at IS NOT NULL)
               FROM payment_checkout_sessions WHERE created_at > now() - INTERVAL '30 days'"""
    ref, ours = both(seeded, project, raw, "retry_stats")
    assert tuple(ours[0].values()) == ref[0]


def test_time_to_complete_equals_raw_query(seeded, project):
    raw = """SELECT count(*), round(avg(m), 2), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY m)::numeric, 2),
                    round(max(m), 2)
               FROM (SELECT EXTRACT(EPOCH FROM completed_at - created_at) / 60 AS m FROM payment_checkout_sessions
                      WHERE status = 'completed' AND created_at > now() - INTERVAL '30 days') AS d"""
    ref, ours = both(seeded, project, raw, "time_to_complete", {"days": "30"})
    row = ours[0]
    assert (row["completed"], row["avg_minutes"], row["p50_minutes"], row["max_minutes"]) == ref[0]
    assert row["p50_minutes"] <= row["p90_minutes"] <= row["p99_minutes"] <= row["max_minutes"]


@pytest.mark.parametrize("days", ["7", "30"])
def test_completion_time_distribution_equals_raw_query(seeded, project, days):
    raw = f"""SELECT width_bucket(EXTRACT(EPOCH FROM completed_at - created_at), ARRAY[60, 300, 900, 3600, 21600, 86400]),
                     count(*)
                FROM payment_checkout_sessions
               WHERE status = 'completed' AND created_at > now() - INTERVAL '{days} days' GROUP BY 1"""
    ref, ours = both(seeded, project, raw, "completion_time_distribution", {"days": days})
    assert [r["band"] for r in ours] == [
        "< 1 min",
        "1-5 min",
        "5-15 min",
        "15-60 min",
        "1-6 h",
        "6-24 h",
        "> 24 h",
    ]
    assert {i: r["sessions"] for i, r in enumerate(ours) if r["sessions"]} == dict(ref)
    assert sum(r["sessions"] for r in ours) > 0


@pytest.mark.parametrize(
    "name",
    [
        r
        for r in (
            "conversion_rate",
            "abandonment_by_plan",
            "reminder_candidates",
            "daily_health",
            "weekly_report",
            "sessions_by_status",
            "abandonment_age",
            "time_to_complete",
            "retry_stats",
            "conversion_by_plan",
            "stuck_sessions",
            "recent_webhooks",
            "error_summary",
            "completion_time_distribution",
        )
    ],
)
def test_every_report_answers_an_empty_database(conn, project, name):
    result = reports.run(conn, project, name)
    assert result.columns
    for row in result.records():
        for column, value in row.items():
            if column.endswith(("rate", "share", "minutes", "today", "attempts", "retry")) and column not in (
                "sessions_today",
                "completed_today",
            ):
                assert value is None, (column, value)


def test_empty_day_gives_null_rate_not_division_error(conn, project):
    assert reports.run(conn, project, "conversion_rate").records() == [
        {"days": 30, "sessions": 0, "completed": 0, "conversion_rate": None}
    ]
    health = reports.run(conn, project, "daily_health").records()[0]
    assert health["completion_rate_today"] is None and health["sessions_today"] == 0


def test_reports_run_read_only(seeded, project, tmp_path):
    """A report file that tried to write would fail: reports run in a READ ONLY transaction."""
    import shutil

    from runner import project as project_mod

    copy = tmp_path / "sql"
    shutil.copytree(project.sql_dir, copy)
    (copy / "reports" / "sneaky.sql").write_text(
        "-- report: sneaky\n-- description: writes\nDELETE FROM users;\n"
    )
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        reports.run(seeded, project_mod.load(copy), "sneaky")
    assert seeded.execute("SELECT count(*) FROM users").fetchone()[0] > 0


# -- headers and parameters ----------------------------------------------------------------------------
def test_every_report_has_a_header_with_description(project):
    found = reports.available(project)
    assert len(found) >= 13
    for report in found:
        assert report.description, report.name
        source = (project.sql_dir / report.path).read_text()
        for param in report.params:
            assert f"%({param.name})s" in source, (report.name, param.name)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"days": "7; DROP TABLE users"},
            "report conversion_rate: parameter days must be an integer, got '7; DROP TABLE users'",
        ),
        ({"days": "0"}, "report conversion_rate: parameter days must be at least 1, got 0"),
        ({"days": "99999"}, "report conversion_rate: parameter days must be at most 3650, got 99999"),
        ({"day": "7"}, "report conversion_rate: unknown parameter 'day' (its parameters: days)"),
        ({"days": ""}, "report conversion_rate: parameter days needs a value (integer)"),
    ],
)
def test_bad_parameters_are_refused_with_one_line(project, raw, message):
    with pytest.raises(ReportParameterError) as info:
        reports.get(project, "conversion_rate").bind(raw)
    assert str(info.value) == message


def test_interval_and_optional_parameters_convert(project):
    bound = reports.get(project, "reminder_candidates").bind(
        {"min_age": "6 hours", "max_age": "1 day 2 hours"}
    )
    assert bound == {
        "min_age": dt.timedelta(hours=6),
        "max_age": dt.timedelta(hours=26),
        "max_attempts": 3,
        "limit": 1000,
    }
    with pytest.raises(ReportParameterError, match="must be a duration"):
        reports.get(project, "reminder_candidates").bind({"min_age": "1 hour'; DROP TABLE users; --"})
    assert reports.get(project, "abandonment_by_plan").bind({}) == {"days": None}


def test_text_parameter_is_bound_not_pasted(seeded, project):
    rows = reports.run(seeded, project, "recent_webhooks", {"topic": "x' OR '1'='1"}).rows
    assert rows == []
    assert seeded.execute("SELECT count(*) FROM webhook_events").fetchone()[0] == 60


def test_unknown_report_names_the_known_ones(project):
    with pytest.raises(ReportError, match=r"no report named 'nope' \(reports: abandonment_age, "):
        reports.get(project, "nope")


def test_malformed_header_is_reported(tmp_path):
    with pytest.raises(ReportError, match="cannot read `-- param: days number`"):
        reports.parse_header("-- report: x\n-- param: days number\nSELECT 1", "x")


# -- output formats --------------------------------------------------------------------------------------
def sample() -> reports.Result:
    report = reports.Report("sample", "a sample")
    return reports.Result(
        report,
        {},
        ["plan", "sessions", "rate", "at"],
        [
            ("pro", 12, Decimal("33.3333333333333333"), dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
            ("basic", 3, None, None),
        ],
    )


def test_table_is_aligned_with_numbers_right():
    assert reports.render(sample(), "table").splitlines() == [
        "plan   sessions                 rate  at",
        "-----  --------  -------------------  -------------------------",
        "pro          12  33.3333333333333333  2025-01-02 03:04:05+00:00",
        "basic         3",
        "(2 rows)",
    ]


def test_csv_and_json_are_exact():
    assert reports.render(sample(), "csv").splitlines() == [
        "plan,sessions,rate,at",
        "pro,12,33.3333333333333333,2025-01-02T03:04:05+00:00",
        "basic,3,,",
    ]
    import json

    assert json.loads(reports.render(sample(), "json")) == [
        {"plan": "pro", "sessions": 12, "rate": "33.3333333333333333", "at": "2025-01-02T03:04:05+00:00"},
        {"plan": "basic", "sessions": 3, "rate": None, "at": None},
    ]
