"""The service's configuration, read once from environment variables (12-factor; see the README's table)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from runner.errors import ConfigError

DEFAULT_SUCCESS_URL = "http://localhost:3000/payment/success?session_id={CHECKOUT_SESSION_ID}"
DEFAULT_CANCEL_URL = "http://localhost:3000/payment/canceled"


def _bool(env: Mapping[str, str], name: str, default: bool | None) -> bool | None:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _number(env: Mapping[str, str], name: str, default: float, kind=int, minimum: float = 0):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def webhook_secrets_from_env(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """STRIPE_WEBHOOK_SECRET's signing secrets: several, comma-separated, while rotating; blanks ignored."""
    raw = (os.environ if env is None else env).get("STRIPE_WEBHOOK_SECRET", "")
    return tuple(s.strip() for s in raw.split(",") if s.strip())


@dataclass(frozen=True)
class Settings:
    """Everything `runner serve` and the checkout library need besides the SQL project."""

    database_url: str | None = None
    stripe_secret_key: str | None = field(default=None, repr=False)
    # Several secrets while rotating: an event signed with any of them is accepted.
    stripe_webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    stripe_api_base: str | None = None
    # Which Stripe mode events and sessions must be in: a test-mode event is refused by a live service.
    stripe_livemode: bool = False
    stripe_timeout: float = 20.0
    stripe_max_network_retries: int = 2
    webhook_tolerance: int = 300
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_audience: str | None = None
    service_token: str | None = field(default=None, repr=False)
    success_url: str = DEFAULT_SUCCESS_URL
    cancel_url: str = DEFAULT_CANCEL_URL
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_timeout: float = 5.0
    log_format: str = "text"
    # Seconds a request's headers and body may take to arrive before a 408 (runner/web/front.py); 0: plain
    # WSGI, for a server behind a proxy that buffers request bodies.
    body_timeout: float = 10.0
    # Seconds a query of the service or a job may run before PostgreSQL cancels it (0: no limit).
    statement_timeout: float = 5.0
    # Stripe Checkout Sessions one user may have created per window (0: no limit).
    checkout_rate_limit: int = 10
    checkout_rate_window: int = 600
    # /metrics: seconds its snapshot is reused; the bearer token it asks for (none: open).
    metrics_max_age: float = 5.0
    metrics_token: str | None = field(default=None, repr=False)
    # A bearer token that opens /dashboard only (the service token opens it too).
    dashboard_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from `env` (default: os.environ); ConfigError names a bad variable."""
        env = os.environ if env is None else env
        key = env.get("STRIPE_SECRET_KEY") or None
        livemode = _bool(env, "STRIPE_LIVEMODE", None)
        if livemode is None:  # follow the key: sk_live_/rk_live_ means live
            livemode = bool(key and key.split("_")[1:2] == ["live"])
        log_format = env.get("RUNNER_LOG_FORMAT", "text").strip().lower() or "text"
        if log_format not in ("text", "json"):
            raise ConfigError(f"RUNNER_LOG_FORMAT must be text or json, got {log_format!r}")
        pool_max = _number(env, "RUNNER_POOL_MAX_SIZE", 10, minimum=1)
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            stripe_secret_key=key,
            stripe_webhook_secrets=webhook_secrets_from_env(env),
            stripe_api_base=(env.get("STRIPE_API_BASE") or "").rstrip("/") or None,
            stripe_livemode=livemode,
            stripe_timeout=_number(env, "STRIPE_TIMEOUT", 20.0, float, minimum=0.1),
            stripe_max_network_retries=_number(env, "STRIPE_MAX_NETWORK_RETRIES", 2),
            webhook_tolerance=_number(env, "STRIPE_WEBHOOK_TOLERANCE", 300, minimum=1),
            jwt_secret=env.get("JWT_SECRET") or None,
            jwt_audience=env.get("JWT_AUDIENCE") or None,
            service_token=env.get("SERVICE_TOKEN") or None,
            success_url=env.get("CHECKOUT_SUCCESS_URL") or DEFAULT_SUCCESS_URL,
            cancel_url=env.get("CHECKOUT_CANCEL_URL") or DEFAULT_CANCEL_URL,
            pool_min_size=min(_number(env, "RUNNER_POOL_MIN_SIZE", 1), pool_max),
            pool_max_size=pool_max,
            pool_timeout=_number(env, "RUNNER_POOL_TIMEOUT", 5.0, float, minimum=0.1),
            log_format=log_format,
            body_timeout=_number(env, "RUNNER_BODY_TIMEOUT", 10.0, float),
            statement_timeout=_number(env, "RUNNER_STATEMENT_TIMEOUT", 5.0, float),
            checkout_rate_limit=_number(env, "CHECKOUT_RATE_LIMIT", 10),
            checkout_rate_window=_number(env, "CHECKOUT_RATE_WINDOW", 600, minimum=1),
            metrics_max_age=_number(env, "METRICS_MAX_AGE", 5.0, float),
            metrics_token=env.get("METRICS_TOKEN") or None,
            dashboard_token=env.get("DASHBOARD_TOKEN") or None,
        )

    def with_(self, **changes) -> Settings:
        """A copy with some fields changed (the CLI's options override the environment)."""
        return replace(self, **changes)
