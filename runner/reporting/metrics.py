"""Prometheus metrics for `GET /metrics`: read from the database at each scrape through the reports of
sql/reports/ (so each figure can be checked by hand with `runner report NAME`), rendered with
prometheus_client in its text format.

Every metric is a gauge; the database is the source of truth, so several service processes expose the same
numbers. A job that never ran has no sample: alert with `absent(...)`. The service answers scrapes from a
Snapshot refreshed at most every METRICS_MAX_AGE seconds: one batch of queries per refresh, however many
scrapers (32 scrapers querying at each scrape had raised the webhook's median latency 50-fold).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import prometheus_client
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from runner.project import Project, from_environment
from runner.reporting import reports

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

WINDOWS = (("24h", 1), ("7d", 7))
# generate_latest writes the classic text format (0.0.4), which every Prometheus version reads.
CONTENT_TYPE = getattr(
    prometheus_client.exposition, "CONTENT_TYPE_PLAIN_0_0_4", prometheus_client.CONTENT_TYPE_LATEST
)


class CheckoutCollector:
    """A prometheus_client collector whose collect() queries the database once per scrape."""

    def __init__(self, conn: psycopg.Connection, project: Project):
        self.conn = conn
        self.project = project

    def _rows(self, name: str, **params) -> list[dict]:
        return reports.run(self.conn, self.project, name, {k: str(v) for k, v in params.items()}).records()

    def collect(self) -> Iterator[Metric]:
        sessions = GaugeMetricFamily(
            "checkout_sessions",
            "Checkout sessions in the table, by plan and status.",
            labels=["plan", "status"],
        )
        for row in self._rows("sessions_by_plan_status"):
            sessions.add_metric([row["subscription_plan"], row["status"]], row["sessions"])
        yield sessions

        created = GaugeMetricFamily(
            "checkout_sessions_created", "Sessions created within the window.", labels=["window"]
        )
        conversion = GaugeMetricFamily(
            "checkout_conversion_ratio",
            "Completed / created for sessions created within the window (0..1; NaN without sessions).",
            labels=["window"],
        )
        for label, days in WINDOWS:
            row = self._rows("conversion_rate", days=days)[0]
            created.add_metric([label], row["sessions"])
            rate = row["conversion_rate"]
            conversion.add_metric([label], math.nan if rate is None else float(rate) / 100)
        yield created
        yield conversion

        health = self._rows("daily_health")[0]
        yield GaugeMetricFamily(
            "checkout_sessions_pending_over_1h",
            "Pending sessions created more than an hour ago.",
            value=health["pending_over_age"],
        )
        yield GaugeMetricFamily(
            "checkout_sessions_pending_past_expiry",
            "Pending sessions whose expires_at has passed (the expire job is behind).",
            value=health["pending_past_expiry"],
        )

        events = GaugeMetricFamily(
            "checkout_webhook_events",
            "Stripe events received in the last 24 hours, by outcome.",
            labels=["status"],
        )
        oldest = math.nan
        for row in self._rows("webhook_outcomes", hours=24):
            events.add_metric([row["status"]], row["events"])
            if row["status"] == "received" and row["oldest_minutes"] is not None:
                oldest = float(row["oldest_minutes"]) * 60
        yield events
        yield GaugeMetricFamily(
            "checkout_webhook_oldest_unprocessed_seconds",
            "Age of the oldest event still `received` (NaN when none).",
            value=oldest,
        )

        success = GaugeMetricFamily(
            "checkout_job_last_success_timestamp_seconds",
            "Unix time the job last finished successfully.",
            labels=["job"],
        )
        failed = GaugeMetricFamily(
            "checkout_job_last_run_failed", "1 when the job's latest run failed.", labels=["job"]
        )
        running = GaugeMetricFamily(
            "checkout_job_running", "1 while a run of the job is in progress.", labels=["job"]
        )
        for row in self._rows("job_status"):
            if row["last_success_at"] is not None:
                success.add_metric([row["job"]], row["last_success_at"].timestamp())
            failed.add_metric([row["job"]], 1 if row["last_outcome"] == "failed" else 0)
            running.add_metric([row["job"]], 1 if row["running_since"] is not None else 0)
        yield success
        yield failed
        yield running


def render(conn: psycopg.Connection, project: Project | None = None) -> tuple[bytes, str]:
    """The metrics in Prometheus text format: (body, content type)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CheckoutCollector(conn, project or from_environment()))
    return generate_latest(registry), CONTENT_TYPE


class Snapshot:
    """The rendered metrics, refreshed at most every `max_age` seconds through `connection()` (a context
    manager giving a connection). One refresh at a time: while it runs, other scrapers get the previous
    snapshot without waiting (the first scrapers of a process wait for the first refresh)."""

    def __init__(
        self,
        connection: Callable[[], AbstractContextManager[psycopg.Connection]],
        max_age: float,
        project: Project | None = None,
    ):
        self.connection = connection
        self.max_age = max_age
        self.project = project
        self.refreshes = 0
        self._lock = threading.Lock()
        self._body: bytes | None = None
        self._taken = -math.inf

    def body(self) -> bytes:
        """The metrics in Prometheus text format, at most `max_age` seconds old (or being refreshed)."""
        if time.monotonic() - self._taken < self.max_age:
            return self._body
        if self._body is not None and not self._lock.acquire(blocking=False):
            return self._body  # another thread is refreshing it
        if self._body is None:
            self._lock.acquire()
        try:
            if time.monotonic() - self._taken >= self.max_age:
                with self.connection() as conn:
                    body, _ = render(conn, self.project)
                self._body, self._taken = body, time.monotonic()
                self.refreshes += 1
            return self._body
        finally:
            self._lock.release()
