"""The HTTP service: Stripe's webhook, the checkout API, health, metrics and the dashboard.

A WSGI app factory, so any WSGI server can run it: `runner serve` uses waitress; gunicorn works too
(`gunicorn 'runner.service:create_app()'`, configuration from the environment). Routes, auth, fields and
status codes are documented in the README ("HTTP API").
"""

from __future__ import annotations

import json
import logging
import select
import time
import uuid
from typing import Any

import psycopg
from flask import Flask, Response, g, jsonify, request
from psycopg_pool import ConnectionPool, PoolTimeout
from werkzeug.exceptions import Forbidden, HTTPException

from runner import auth, checkout, webhook
from runner.auth import Principal
from runner.database import application_name
from runner.errors import ConfigError, DatabaseUnavailable, InvalidRequest, NotFound, RunnerError
from runner.settings import Settings

log = logging.getLogger(__name__)
access_log = logging.getLogger("runner.access")

USER_STATUSES = ("canceled",)  # what a customer may do to their own pending session
SERVICE_STATUSES = ("canceled", "expired", "failed")


# A connection used this recently is lent without a round trip unless its socket says otherwise
# (HikariCP's aliveBypassWindow, which is 0.5 s).
CHECK_IDLE_SECONDS = 1.0


class _Pool(ConnectionPool):
    """psycopg_pool's pool, noting when each connection comes back (for `check_connection`). Not a
    `reset=` callback: that moves every return to the pool's worker thread, a thread hand-off per request."""

    def putconn(self, conn: psycopg.Connection) -> None:
        conn._runner_idle_since = time.monotonic()
        super().putconn(conn)


def check_connection(conn: psycopg.Connection) -> None:
    """The pool's check before lending a connection: psycopg_pool's round trip, but only for a suspect
    connection: idle longer than CHECK_IDLE_SECONDS, or with input waiting while idle (the goodbye of a
    server shutting down or of pg_terminate_backend, a reset). Probing every checkout cost one round trip
    per request. A connection that breaks anyway fails its request with a 503 (Stripe retries) and the
    pool replaces it."""
    idle_since = getattr(conn, "_runner_idle_since", None)
    if idle_since is not None and time.monotonic() - idle_since < CHECK_IDLE_SECONDS:
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN)
        if not poller.poll(0):
            return
    ConnectionPool.check_connection(conn)


class ServiceState:
    """What the routes share: settings, the connection pool, the Stripe client (built on first use)."""

    def __init__(self, settings: Settings):
        if not settings.database_url:
            raise ConfigError("DATABASE_URL is not set: the service needs a database")
        self.settings = settings
        self.pool = _Pool(
            settings.database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.pool_timeout,
            kwargs={"autocommit": True, "application_name": application_name("serve")},
            # A connection the database dropped (restart, failover) is replaced before a request gets it;
            # one in steady use is not probed (see check_connection).
            check=check_connection,
            name="runner-serve",
            open=True,
        )
        self._stripe = None

    def stripe_client(self):
        if self._stripe is None:
            from runner import stripe_gateway

            self._stripe = stripe_gateway.make_client(self.settings)
        return self._stripe

    def connection(self):
        """A pooled connection (context manager); waiting longer than the pool timeout means 503."""
        return self.pool.connection()

    def close(self) -> None:
        self.pool.close()


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


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
    fields = {
        "method": request.method,
        "path": request.path,  # never the query string, headers or body: no tokens or signatures in logs
        "status": response.status_code,
        "ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
        "bytes": response.calculate_content_length(),
        "remote": request.remote_addr,
    }
    if _state().settings.log_format == "json":
        access_log.info(json.dumps({"event": "request", **fields}))
    else:  # a decoded %0d%0a in the path must not start a forged log line
        path = fields["path"].encode("unicode_escape").decode("ascii") if not fields["path"].isprintable() \
            else fields["path"]
        access_log.info("%s %s %s %sms", fields["method"], path, fields["status"], fields["ms"])
    return response


def create_app(settings: Settings | None = None) -> Flask:
    """The WSGI app. Without `settings`, reads the environment (see the README's configuration table)."""
    settings = settings or Settings.from_env()
    app = Flask("runner.service")
    app.config["MAX_CONTENT_LENGTH"] = webhook.MAX_BODY_BYTES
    app.json.sort_keys = False
    state = ServiceState(settings)
    app.extensions["runner"] = state

    app.before_request(lambda: setattr(g, "started", time.perf_counter()))
    app.after_request(_log_request)

    @app.errorhandler(RunnerError)
    def runner_error(exc: RunnerError):
        if isinstance(exc, DatabaseUnavailable):
            return error_response(503, "database_unavailable", "the database is unavailable; retry later")
        status = getattr(exc, "http_status", 500)
        if status >= 500 and status != 502:
            log.error("%s: %s", type(exc).__name__, exc)
        return error_response(status, getattr(exc, "code", "internal_error"), str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(psycopg.OperationalError)
    @app.errorhandler(PoolTimeout)
    def database_down(exc: Exception):
        if not isinstance(exc, PoolTimeout) and not checkout.connection_lost(exc):
            return unexpected(exc)
        log.warning("database unavailable: %s", str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
        return error_response(503, "database_unavailable", "the database is unavailable; retry later")

    @app.errorhandler(psycopg.errors.InsufficientPrivilege)
    def misconfigured_role(exc: Exception):
        # A deployment mistake, not a bug: say which grant is missing (README: roles and least privilege).
        log.error("database role lacks a privilege on %s %s: %s", request.method, request.path,
                  str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
        return error_response(503, "database_privileges",
                              "the service's database role lacks a privilege for this route (e.g. /metrics and "
                              "/dashboard need the reporting role); see the README's roles section")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error; it has been logged")

    @app.post("/api/payments/webhook")
    def stripe_webhook():
        payload = request.get_data(cache=False)  # the raw bytes Stripe signed; over 1 MiB raises 413
        webhook.verify_signature(payload, request.headers.get("Stripe-Signature"),
                                 settings.stripe_webhook_secrets, settings.webhook_tolerance)
        event = webhook.parse_event(payload)
        try:
            with state.connection() as conn:
                outcome = webhook.handle(conn, event, settings.stripe_livemode)
        except (psycopg.OperationalError, PoolTimeout, DatabaseUnavailable, InvalidRequest):
            raise
        except Exception as exc:
            log.exception("processing Stripe event %s (%s) failed", event.id, event.type)
            try:
                with state.connection() as conn:
                    webhook.record_failure(conn, event, f"{type(exc).__name__}: {exc}")
            except (psycopg.Error, PoolTimeout) as failure:
                log.warning("could not record the failure of event %s: %s", event.id, failure)
            return error_response(500, "processing_failed", f"event {event.id} could not be processed; retry")
        # Every verified event is answered 2xx, a rejected (mismatching) one included: Stripe's retries
        # could not change the outcome; error_logs holds it for a person to look at.
        return jsonify(outcome.as_dict())

    @app.post("/api/payments/create-checkout")
    def create_checkout():
        principal = _principal()
        body = _json_body()
        user_id = _acting_user(principal, body.get("userId"))
        with state.connection() as conn:
            result = checkout.create_checkout(conn, state.stripe_client, settings, user_id, body.get("plan"))
        return jsonify({"checkoutSessionId": result.session["id"], "url": result.url,
                        "resumed": result.resumed, "session": result.session})

    @app.get("/api/payments/checkout-session")
    def get_checkout_session():
        principal = _principal()
        session_id, user_param = request.args.get("sessionId"), request.args.get("userId")
        with state.connection() as conn:
            if session_id:
                owner = None if principal.is_service else principal.user_id
                if user_param is not None:
                    owner = _acting_user(principal, user_param)
                return jsonify({"session": checkout.get_session(conn, session_id, owner)})
            if principal.is_service and user_param is None:
                raise InvalidRequest("sessionId or userId is required with the service token")
            return jsonify({"session": checkout.latest_session(conn, _acting_user(principal, user_param))})

    @app.post("/api/payments/checkout-session")
    def start_checkout_session():
        principal = _principal()
        body = _json_body()
        user_id = _acting_user(principal, body.get("userId"))
        with state.connection() as conn:
            return jsonify({"session": checkout.start_session(conn, user_id, body.get("plan"))})

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
            with state.pool.connection(timeout=min(settings.pool_timeout, 2.0)) as conn:
                conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("health check failed: %s", str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
            return jsonify({"status": "unavailable", "database": "unreachable"}), 503
        return jsonify({"status": "ok", "database": "ok"})

    @app.get("/metrics")
    def metrics():
        from runner import metrics as metrics_mod  # owned by the metrics work; imported on first use

        with state.connection() as conn:
            body, content_type = metrics_mod.render(conn)
        return Response(body, content_type=content_type)

    @app.get("/dashboard")
    def dashboard():
        if not _principal().is_service:
            raise Forbidden("the dashboard needs the service token")
        from runner import dashboard as dashboard_mod

        with state.connection() as conn:
            html = dashboard_mod.render(conn)
        return Response(html, content_type="text/html; charset=utf-8")

    return app
