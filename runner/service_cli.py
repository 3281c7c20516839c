"""`runner serve`: the HTTP service under waitress, a production WSGI server, with graceful shutdown."""

from __future__ import annotations

import logging
import signal
import sys

import click

from runner.cli import Context

log = logging.getLogger(__name__)


def run(app, host: str, port: int, threads: int, on_ready=None) -> None:
    """Serve `app` until SIGTERM or SIGINT, then stop accepting, let running requests finish (waitress
    allows them 5 seconds) and close the connection pool."""
    from waitress.server import create_server

    server = create_server(app, host=host, port=port, threads=threads, ident="runner")

    def stop(signum, frame):
        log.info("received %s: shutting down", signal.Signals(signum).name)
        raise SystemExit(0)  # waitress's loop catches it and drains its worker threads

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info("serving on http://%s:%s with %d threads", host, server.effective_port, threads)
    if on_ready:
        on_ready(server)
    try:
        server.run()
    finally:
        server.close()
        app.extensions["runner"].close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("stopped")


@click.command()
@click.option("--host", envvar="HOST", default="127.0.0.1", show_default=True, help="Address to listen on (env HOST).")
@click.option("--port", envvar="PORT", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (env PORT).")
@click.option("--workers", envvar="RUNNER_WORKERS", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Requests served at once: waitress worker threads (env RUNNER_WORKERS). The connection pool "
                   "holds up to this many connections unless RUNNER_POOL_MAX_SIZE says otherwise.")
@click.option("--log-format", type=click.Choice(["text", "json"]), envvar="RUNNER_LOG_FORMAT", default="text",
              show_default=True, help="One line per request, as text or JSON (env RUNNER_LOG_FORMAT).")
@click.pass_obj
def serve(obj: Context, host: str, port: int, workers: int, log_format: str) -> None:
    """Serve the Stripe webhook, the checkout API, /healthz, /metrics and /dashboard.

    Configuration comes from the environment (STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, JWT_SECRET,
    SERVICE_TOKEN, ...; see the README). SIGTERM or Ctrl-C stops accepting connections, lets running
    requests finish and closes the database pool. For several processes, run the same app under gunicorn:
    gunicorn -w 4 'runner.service:create_app()'.

    \b
    Examples:
      runner serve --port 8000
      PORT=8080 runner serve --host 0.0.0.0 --workers 16 --log-format json
      stripe listen --forward-to localhost:8000/api/payments/webhook
    """
    import os

    from runner.service import create_app
    from runner.settings import Settings

    settings = Settings.from_env()
    pool_max = settings.pool_max_size if os.environ.get("RUNNER_POOL_MAX_SIZE") else workers
    settings = settings.with_(database_url=obj.url, log_format=log_format, pool_max_size=pool_max,
                              pool_min_size=min(settings.pool_min_size, pool_max))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s" if log_format == "json" else
                                           "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("runner", "waitress"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    app = create_app(settings)
    click.echo(f"runner serve: listening on http://{host}:{port} ({workers} threads)", err=True)
    run(app, host, port, workers)
