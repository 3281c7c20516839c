"""Alert thresholds, read from environment variables (see the README's configuration table).

`runner doctor` turns a threshold crossed into a `warn`; `runner doctor --fail-on warn` exits non-zero
on it, which is what cron or a monitor alerts on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import ClassVar

from runner.errors import ConfigError


@dataclass(frozen=True)
class Thresholds:
    """When a health check stops passing."""

    # Percent of the last 7 days' sessions not completed, above which to warn...
    abandonment_rate: float = 90.0
    # ...once there are at least this many sessions (fewer say nothing).
    min_sessions: int = 20
    # Pending sessions with a Stripe id older than stuck_after_minutes: more than this many warns.
    stuck_sessions: int = 0
    stuck_after_minutes: int = 60
    # Webhook events that failed in the last 24 hours: more than this many warns.
    webhook_failures: int = 0
    # Hours since the expire job last succeeded after which it is overdue (it runs hourly).
    expire_overdue_hours: float = 2.0
    # error_logs rows in the last 24 hours: more than this many warns.
    errors_24h: int = 50

    ENV: ClassVar[dict[str, str]] = {
        "abandonment_rate": "ALERT_ABANDONMENT_RATE",
        "min_sessions": "ALERT_MIN_SESSIONS",
        "stuck_sessions": "ALERT_STUCK_SESSIONS",
        "stuck_after_minutes": "ALERT_STUCK_AFTER_MINUTES",
        "webhook_failures": "ALERT_WEBHOOK_FAILURES",
        "expire_overdue_hours": "ALERT_EXPIRE_OVERDUE_HOURS",
        "errors_24h": "ALERT_ERRORS_24H",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Thresholds:
        """The thresholds from `env` (default os.environ); ConfigError names a bad variable."""
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            name = cls.ENV[f.name]
            raw = env.get(name, "").strip()
            if not raw:
                continue
            kind = float if f.type in ("float", float) else int
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigError(
                    f"{name} must be a {'number' if kind is float else 'whole number'}, got {raw!r}"
                ) from None
            if value < 0 or (f.name == "abandonment_rate" and value > 100):
                raise ConfigError(
                    f"{name} must be between 0 and {'100' if f.name == 'abandonment_rate' else 'infinity'}, got {raw!r}"
                )
            values[f.name] = value
        return cls(**values)
