"""The HTTP service: Stripe's webhook, the checkout API, health, metrics and the dashboard.

A WSGI app factory, so any WSGI server can run it: `runner serve` uses granian; gunicorn works too
(`gunicorn 'runner.service:create_app()'`, configuration from the environment). Routes, auth, fields and
status codes are documented in the README ("HTTP API").
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from http import HTTPStatus
from typing import Any

import psycopg
from flask import Flask, Response, g, jsonify, request
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException
from werkzeug.wsgi import get_input_stream

from runner import error_log
from runner.errors import (
    ConfigError,
    DatabaseUnavailable,
    InvalidRequest,
    NotFound,
    RateLimited,
    RunnerError,
    connection_lost,
    first_line,
)
from runner.payments import checkout, webhook
from runner.settings import Settings
from runner.web import auth, pool
from runner.web.auth import Principal

log = logging.getLogger(__name__)
access_log = logging.getLogger("runner.access")

USER_STATUSES = ("canceled",)  # what a customer may do to their own pending session
SERVICE_STATUSES = ("canceled", "expired", "failed")
# The dashboard is self-contained (inline styles and SVG, no script, nothing fetched): the policy allows
# exactly that. Never cached: it shows business figures.
DASHBOARD_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


class ServiceState:
    """What the routes share: settings, the connection pool, the Stripe client (built on first use)."""

    def __init__(self, settings: Settings):
        if not settings.database_url:
            raise ConfigError("DATABASE_URL is not set: the service needs a database")
        self.settings = settings
        # Fails fast on a database that does not answer, recovers as soon as it does (runner/web/pool.py).
        self.pool = pool.make_pool(
            settings.database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.pool_timeout,
            statement_timeout=settings.statement_timeout,
        )
        # Database failures the routes meet, counted and written to error_logs (category database) from a
        # thread of its own once the database answers again (runner/error_log.py).
        self.database_errors = error_log.BackgroundWriter(
            error_log.DatabaseErrors("runner serve"), lambda: self.pool.connection(timeout=2.0)
        )
        self._stripe = None
        self.metrics = None  # /metrics' snapshot (runner/reporting/metrics.py), made on the first scrape
        # The webhook's statement is one blocking libpq call: a deadline of its own (runner/web/pool.py).
        self.watchdog = pool.Watchdog()
        self.answer_timeout = pool.answer_timeout(settings.statement_timeout)

    def stripe_client(self):
        if self._stripe is None:
            from runner.payments import stripe_gateway

            self._stripe = stripe_gateway.make_client(self.settings)
        return self._stripe

    def connection(self):
        """A pooled connection (context manager); waiting longer than the pool timeout means 503."""
        return self.pool.connection()

    def close(self) -> None:
        self.database_errors.close()
        self.pool.close()


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def error_response(status: int, code: str, message: str) -> Response:
    return Response(_error_body(code, message), status=status, mimetype="application/json")


def error_answer(exc: BaseException, method: str, path: str) -> tuple[int, str, str]:
    """(HTTP status, error code, message) for an exception a route raised, logged as it deserves; the one
    mapping of the Flask routes and of WebhookRoute."""
    if isinstance(exc, (DatabaseUnavailable, PoolTimeout)) or (
        isinstance(exc, psycopg.OperationalError) and connection_lost(exc)
    ):
        if not isinstance(exc, DatabaseUnavailable):
            log.warning("database unavailable: %s", first_line(exc))
        return 503, "database_unavailable", "the database is unavailable; retry later"
    if isinstance(exc, psycopg.errors.QueryCanceled):  # RUNNER_STATEMENT_TIMEOUT: too slow now, retry later
        log.warning("statement cancelled on %s %s: %s", method, path, first_line(exc))
        return 503, "database_timeout", "the database did not answer in time; retry later"
    if isinstance(exc, RunnerError):
        status = getattr(exc, "http_status", 500)
        if status >= 500 and status != 502:
            log.error("%s: %s", type(exc).__name__, exc)
        return status, getattr(exc, "code", "internal_error"), str(exc)
    if isinstance(exc, HTTPException):
        return exc.code or 500, (exc.name or "error").lower().replace(" ", "_"), exc.description or exc.name
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        # A deployment mistake, not a bug: say which grant is missing (README: roles and least privilege).
        log.error("database role lacks a privilege on %s %s: %s", method, path, first_line(exc))
        return (
            503,
            "database_privileges",
            (
                "the service's database role lacks a privilege for this route (e.g. "
                "/metrics and /dashboard need the reporting role); see the README's "
                "roles section"
            ),
        )
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return 500, "internal_error", "internal error; it has been logged"


def _state() -> ServiceState:
    from flask import current_app

    return current_app.extensions["runner"]


def _principal() -> Principal:
    return auth.authenticate(request.headers.get("Authorization"), _state().settings)


def _json_body() -> dict[str, Any]:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # silent= covers ValueError only; json's C parser gives up on deep nesting
        body = None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object (Content-Type: application/json)")
    return body


def _acting_user(principal: Principal, requested: Any) -> uuid.UUID:
    """The user a request acts for: a user's own id (naming another user is a 404), or the service's userId."""
    if principal.is_service:
        if requested is None:
            raise InvalidRequest("userId is required with the service token")
        return checkout.parse_uuid(requested, "userId")
    if requested is not None and str(requested).lower() != str(principal.user_id):
        raise NotFound("no such user")
    return principal.user_id


def _log_request(response: Response) -> Response:
    started = g.pop("started", None)
    log_access(
        _state().settings.log_format,
        request.method,
        request.path,
        response.status_code,
        round((time.perf_counter() - started) * 1000, 2) if started else None,
        response.calculate_content_length(),
        request.remote_addr,
    )
    return response


def log_access(
    log_format: str,
    method: str,
    path: str,
    status: int,
    ms: float | None,
    size: int | None,
    remote: str | None,
) -> None:
    """The one line per request: never the query string, headers or body, so no tokens or signatures."""
    if log_format == "json":
        access_log.info(
            json.dumps(
                {
                    "event": "request",
                    "method": method,
                    "path": path,
                    "status": status,
                    "ms": ms,
                    "bytes": size,
                    "remote": remote,
                }
            )
        )
    else:  # a decoded %0d%0a in the path must not start a forged log line
        path = path.encode("unicode_escape").decode("ascii") if not path.isprintable() else path
        access_log.info("%s %s %s %sms", method, path, status, ms)


class WebhookRoute:
    """`POST /api/payments/webhook` as plain WSGI in front of the Flask app (installed as its `wsgi_app`).

    Every Stripe event comes through here, so it skips Flask's request machinery: measured with 16 threads,
    Flask's contexts, routing and response objects cost about 0.2 ms of CPU per request, a tenth of what the
    whole delivery costs (docs/performance.md). Answers, errors and the access log line are the same as the
    Flask routes': JSON bodies {"error": {"code", "message"}}, 413 over MAX_BODY_BYTES, 405 for other methods.
    """

    PATH = "/api/payments/webhook"

    def __init__(self, app, state: ServiceState):
        self.app = app
        self.state = state

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != self.PATH:
            return self.app(environ, start_response)
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "")
        headers = [("Content-Type", "application/json")]
        if method != "POST":
            status, body = 405, _error_body("method_not_allowed", "the webhook accepts POST only")
            headers.append(("Allow", "POST"))
        else:
            status, body = self.deliver(environ)
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        log_access(
            self.state.settings.log_format,
            method,
            self.PATH,
            status,
            round((time.perf_counter() - started) * 1000, 2),
            len(body),
            environ.get("REMOTE_ADDR"),
        )
        return [body]

    def deliver(self, environ) -> tuple[int, bytes]:
        """(HTTP status, JSON body) for one delivery: verify, parse, record and process."""
        settings = self.state.settings
        try:
            # The raw bytes Stripe signed; over MAX_BODY_BYTES raises 413.
            payload = get_input_stream(environ, max_content_length=webhook.MAX_BODY_BYTES).read()
            signature = environ.get("HTTP_STRIPE_SIGNATURE")
            webhook.verify_signature(
                payload, signature, settings.stripe_webhook_secrets, settings.webhook_tolerance
            )
            # The raw body and header go down as they came: the database verifies them again.
            delivery = webhook.Delivery.of(payload, signature)
            tolerance = settings.webhook_tolerance
            try:
                with (
                    self.state.connection() as conn,
                    self.state.watchdog.watch(conn, self.state.answer_timeout),
                ):
                    outcome = webhook.handle(conn, delivery, settings.stripe_livemode, tolerance)
            except (psycopg.OperationalError, PoolTimeout, RunnerError):  # mapped below (400, 503, ...)
                raise
            except Exception as exc:
                log.exception("processing Stripe event %s (%s) failed", delivery.label, delivery.type)
                self.state.database_errors.note(exc)  # failed SQL, a serialization failure: category database
                try:
                    with self.state.connection() as conn:
                        webhook.record_failure(conn, delivery, f"{type(exc).__name__}: {exc}", tolerance)
                except (psycopg.Error, PoolTimeout) as failure:
                    log.warning("could not record the failure of event %s: %s", delivery.label, failure)
                return 500, _error_body(
                    "processing_failed", f"event {delivery.label} could not be processed; retry"
                )
        except Exception as exc:  # noqa: BLE001 - mapped like every route's: 400, 413, 503, else a logged 500
            self.state.database_errors.note(exc)
            status, code, message = error_answer(exc, "POST", self.PATH)
            return status, _error_body(code, message)
        # Every verified event is answered 2xx, a rejected (mismatching) one included: Stripe's retries
        # could not change the outcome; error_logs holds it for a person to look at.
        return 200, json.dumps(outcome.as_dict()).encode()


def create_app(settings: Settings | None = None) -> Flask:
    """The WSGI app. Without `settings`, reads the environment (see the README's configuration table)."""
    settings = settings or Settings.from_env()
    app = Flask("runner.web.app")
    app.config["MAX_CONTENT_LENGTH"] = webhook.MAX_BODY_BYTES
    app.json.sort_keys = False
    state = ServiceState(settings)
    app.extensions["runner"] = state

    app.wsgi_app = WebhookRoute(app.wsgi_app, state)  # POST /api/payments/webhook, before Flask
    app.before_request(lambda: setattr(g, "started", time.perf_counter()))
    app.after_request(_log_request)

    @app.errorhandler(RunnerError)
    @app.errorhandler(HTTPException)
    @app.errorhandler(psycopg.OperationalError)
    @app.errorhandler(PoolTimeout)
    @app.errorhandler(psycopg.errors.InsufficientPrivilege)
    @app.errorhandler(Exception)
    def failed(exc: Exception):
        state.database_errors.note(exc)
        response = error_response(*error_answer(exc, request.method, request.path))
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.post("/api/payments/create-checkout")
    def create_checkout():
        principal = _principal()
        body = _json_body()
        user_id = _acting_user(principal, body.get("userId"))
        with state.connection() as conn:
            result = checkout.create_checkout(
                conn, state.stripe_client, settings, user_id, body.get("plan"), metadata=body.get("metadata")
            )
        return jsonify(
            {
                "checkoutSessionId": result.session["id"],
                "url": result.url,
                "resumed": result.resumed,
                "session": result.session,
            }
        )

    @app.get("/api/payments/checkout-session")
    def get_checkout_session():
        principal = _principal()
        session_id, user_param = request.args.get("sessionId"), request.args.get("userId")
        stripe_session_id = request.args.get("stripeSessionId")  # current or replaced (docs/audit-trail.md)
        if session_id and stripe_session_id:
            raise InvalidRequest("give sessionId or stripeSessionId, not both")
        with state.connection() as conn:
            if session_id or stripe_session_id:
                owner = None if principal.is_service else principal.user_id
                if user_param is not None:
                    owner = _acting_user(principal, user_param)
                if stripe_session_id:
                    return jsonify(
                        {"session": checkout.session_for_stripe_session(conn, stripe_session_id, owner)}
                    )
                return jsonify({"session": checkout.get_session(conn, session_id, owner)})
            if principal.is_service and user_param is None:
                raise InvalidRequest(
                    "sessionId, stripeSessionId or userId is required with the service token"
                )
            return jsonify({"session": checkout.latest_session(conn, _acting_user(principal, user_param))})

    @app.post("/api/payments/checkout-session")
    def start_checkout_session():
        principal = _principal()
        body = _json_body()
        user_id = _acting_user(principal, body.get("userId"))
        with state.connection() as conn:
            return jsonify(
                {
                    "session": checkout.start_session(
                        conn, user_id, body.get("plan"), metadata=body.get("metadata")
                    )
                }
            )

    @app.patch("/api/payments/checkout-session")
    def update_checkout_session():
        principal = _principal()
        body = _json_body()
        allowed = SERVICE_STATUSES if principal.is_service else USER_STATUSES
        if body.get("status") not in allowed:
            raise InvalidRequest(f"status must be one of: {', '.join(allowed)}")
        if "sessionId" not in body:
            raise InvalidRequest("sessionId is required")
        owner = None if principal.is_service else principal.user_id
        with state.connection() as conn:
            return jsonify({"session": checkout.set_status(conn, body["sessionId"], body["status"], owner)})

    @app.get("/healthz")
    def healthz():
        try:
            # At most 1 s waiting for a connection (and its check), then 0.5 s for the answer: 503 within 2 s.
            with (
                state.pool.connection(timeout=min(settings.pool_timeout, 1.0)) as conn,
                pool.deadline(conn, pool.CHECK_SECONDS),
            ):
                conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout) as exc:
            state.database_errors.note(exc)
            log.warning("health check failed: %s", first_line(exc))
            return jsonify({"status": "unavailable", "database": "unreachable"}), 503
        return jsonify({"status": "ok", "database": "ok"})

    @app.get("/metrics")
    def metrics():
        auth.authorize_metrics(request.headers.get("Authorization"), settings)
        from runner.reporting import metrics as metrics_mod  # imported on first use

        if state.metrics is None:
            state.metrics = metrics_mod.Snapshot(state.connection, settings.metrics_max_age)
        return Response(state.metrics.body(), content_type=metrics_mod.CONTENT_TYPE)

    @app.get("/dashboard")
    def dashboard():
        auth.authorize_dashboard(request.headers.get("Authorization"), settings)
        from runner.reporting import dashboard as dashboard_mod

        with state.connection() as conn:
            html = dashboard_mod.render(conn)
        return Response(html, content_type="text/html; charset=utf-8", headers=DASHBOARD_HEADERS)

    return app
