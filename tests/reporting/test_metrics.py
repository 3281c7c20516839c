"""`runner/reporting/metrics.py: render(conn)`: Prometheus text with the documented metrics, equal to the reports."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from runner.reporting import metrics, reports
from tests.reporting_seed import seed


def scrape(conn, project) -> dict[tuple[str, tuple], float]:
    body, content_type = metrics.render(conn, project)
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_fresh_database_exports_zeros_and_nan(conn, project):
    samples = scrape(conn, project)
    assert samples[("checkout_sessions_created", (("window", "24h"),))] == 0
    assert math.isnan(samples[("checkout_conversion_ratio", (("window", "7d"),))])
    assert samples[("checkout_webhook_events", (("status", "failed"),))] == 0
    assert not any(name == "checkout_job_last_success_timestamp_seconds" for name, _ in samples)


def test_seeded_metrics_match_the_reports(conn, project):
    seed(conn)
    conn.execute(
        "INSERT INTO job_runs (job, started_at, finished_at, outcome) VALUES "
        "('expire', '2025-01-01 10:00+00', '2025-01-01 10:00:05+00', 'succeeded'), "
        "('expire', '2025-01-01 11:00+00', '2025-01-01 11:00:01+00', 'failed')"
    )
    samples = scrape(conn, project)
    total = conn.execute("SELECT count(*) FROM payment_checkout_sessions").fetchone()[0]
    assert sum(v for (name, _), v in samples.items() if name == "checkout_sessions") == total
    pro_completed = conn.execute(
        "SELECT count(*) FROM payment_checkout_sessions "
        "WHERE subscription_plan = 'pro' AND status = 'completed'"
    ).fetchone()[0]
    assert samples[("checkout_sessions", (("plan", "pro"), ("status", "completed")))] == pro_completed
    week = reports.run(conn, project, "conversion_rate", {"days": "7"}).records()[0]
    assert samples[("checkout_conversion_ratio", (("window", "7d"),))] == float(week["conversion_rate"]) / 100
    assert samples[("checkout_sessions_created", (("window", "7d"),))] == week["sessions"]
    failed = conn.execute(
        "SELECT count(*) FROM webhook_events WHERE status = 'failed' "
        "AND created_at > now() - INTERVAL '24 hours'"
    ).fetchone()[0]
    assert samples[("checkout_webhook_events", (("status", "failed"),))] == failed > 0
    assert samples[("checkout_job_last_success_timestamp_seconds", (("job", "expire"),))] == 1735725605.0
    assert samples[("checkout_job_last_run_failed", (("job", "expire"),))] == 1
    assert samples[("checkout_sessions_pending_past_expiry", ())] > 0
