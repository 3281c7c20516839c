"""The HTTP server: granian running the Flask app (its HTTP and I/O in Rust), one log line per request,
graceful shutdown."""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys

import click

from runner.errors import ConfigError

log = logging.getLogger(__name__)


class JsonLineFormatter(logging.Formatter):
    """--log-format json: every line one JSON object. The request lines are already one; any other message
    (startup, shutdown, a warning) becomes {"event": "log", "level", "logger", "message"}."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "runner.access":
            return record.getMessage()
        line = {
            "event": "log",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


class TextLineFormatter(logging.Formatter):
    """--log-format text: one line per message (a line break inside one, e.g. libpq's hints, is escaped)."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).replace("\r", "\\r").replace("\n", "\\n")


def _not_granian_thread_advice(record: logging.LogRecord) -> bool:
    # granian advises fewer Python threads than --workers when there are more threads than cores; the
    # runner's threads spend their time waiting for PostgreSQL, so the advice does not apply here.
    return not record.getMessage().startswith("Configuration allows spawning up to")


def configure_logging(log_format: str) -> None:
    """The runner's loggers (the request lines among them), and the pool's and granian's warnings, to stderr,
    one line each, in the chosen format.

    Run again after granian configured logging (it replaces the handlers of its own logger)."""
    formatter = JsonLineFormatter() if log_format == "json" else TextLineFormatter()
    for name, level in (
        ("runner", logging.INFO),
        ("psycopg", logging.WARNING),
        ("_granian", logging.WARNING),
    ):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        if name == "_granian":
            handler.addFilter(_not_granian_thread_advice)
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level)
        logger.propagate = False


def load_app(settings, log_format: str, threads: int = 8, processes: int = 1):
    """Granian's target loader, run in each worker process: logging, then the app and its own pool, behind
    the front that reads request bodies before a thread is taken (runner/web/front.py).

    The pool is made here, after the worker started, never inherited across fork; it is closed when the
    worker stops (multiprocessing runs its finalizers as a worker process exits).
    """
    from multiprocessing import util

    from runner.payments import webhook
    from runner.web.app import create_app, log_access
    from runner.web.front import BufferedWSGI

    configure_logging(log_format)
    app = create_app(settings)
    util.Finalize(app, app.extensions["runner"].close, exitpriority=10)
    if not settings.body_timeout:  # RUNNER_BODY_TIMEOUT=0: behind a proxy that buffers bodies, plain WSGI
        return app
    return BufferedWSGI(
        app,
        threads=threads,
        body_timeout=settings.body_timeout,
        max_body=webhook.MAX_BODY_BYTES,
        multiprocess=processes > 1,
        log_access=lambda *line: log_access(settings.log_format, *line),
    )


def run(settings, host: str, port: int, threads: int, processes: int = 1, log_format: str = "text") -> None:
    """Serve until SIGTERM or SIGINT; then stop accepting, let running requests finish and close each
    worker's pool. `threads` requests are served at once by each of `processes` worker processes."""
    from functools import partial

    from granian.constants import Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    check_secrets(settings)
    buffered = settings.body_timeout > 0
    _check_can_listen(host, port)  # before granian, which fails on it with a Python and a Rust backtrace

    class RunnerServer(Server):
        def signal_handler_interrupt(self, signum=None, *args, **kwargs):
            if not self.interrupt_signal:  # once, however many signals arrive
                name = signal.Signals(signum).name if signum else "a stop signal"
                log.info("received %s: shutting down (running requests finish first)", name)
            return super().signal_handler_interrupt(signum, *args, **kwargs)

    server = RunnerServer(
        "runner.service:create_app",  # a label for granian: load_app below builds the app in each worker
        # RSGI, granian's native interface, with the WSGI app behind runner/web/front.py: bodies are read on
        # the event loop within RUNNER_BODY_TIMEOUT, then the app runs on one of `threads` threads. (granian's
        # WSGI interface lets the app read the body on its thread: slow clients could hold every thread.)
        # RUNNER_BODY_TIMEOUT=0 opts out (granian's WSGI interface, about 0.2 ms of CPU less per request, for a
        # server behind a proxy that buffers request bodies, as nginx does by default).
        address=host,
        port=port,
        interface=Interfaces.RSGI if buffered else Interfaces.WSGI,
        workers=processes,
        # No `backpressure` below the default: capped at `threads`, more keep-alive connections than threads
        # stalled (90 deliveries/s instead of 1,264 with 16 connections on 8 threads, bench_webhook.py).
        blocking_threads=1 if buffered else threads,
        websockets=False,
        log_level=LogLevels.warning,
        # Headers too must arrive within the body deadline.
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, round(settings.body_timeout * 1000))
            if buffered
            else HTTP1Settings.header_read_timeout
        ),
        log_access=False,  # the runner writes one line per request itself (runner.access)
    )
    configure_logging(log_format)  # after granian's own logging set-up, which replaced its logger's handlers

    def started():
        if log_format == "text":  # in JSON mode every line is JSON: the log line below says the same
            click.echo(
                f"runner serve: listening on http://{host}:{port} ({processes} process(es) x {threads} "
                "threads)",
                err=True,
            )
        log.info("serving on http://%s:%s: %d process(es) x %d threads", host, port, processes, threads)

    server.on_startup(started)
    server.on_shutdown(lambda: log.info("stopped"))
    server.serve(target_loader=partial(load_app, settings, log_format, threads, processes), wrap_loader=False)


# A bearer token or an HMAC key shorter than this is refused at start: 32 bytes is what `openssl rand -hex 16`
# prints, and what RFC 7518 asks of an HS256 key.
MIN_SECRET_BYTES = 32


def check_secrets(settings) -> None:
    """ConfigError naming the first secret that is set but shorter than MIN_SECRET_BYTES."""
    for name, value in (
        ("JWT_SECRET", settings.jwt_secret),
        ("SERVICE_TOKEN", settings.service_token),
        ("DASHBOARD_TOKEN", settings.dashboard_token),
        ("METRICS_TOKEN", settings.metrics_token),
    ):
        if value is not None and len(value.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{name} is {len(value.encode())} bytes: runner serve needs at least "
                f"{MIN_SECRET_BYTES} (make one with: openssl rand -hex 32)"
            )


def _check_can_listen(host: str, port: int) -> None:
    """ConfigError, one line, when the address cannot be listened on (in use, not this machine's, a privileged
    port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise ConfigError(f"runner serve cannot listen on {host}:{port}: {exc.strerror or exc}") from None
