"""`runner serve`: parse the options, build the settings, hand them to `runner.web.server.run`."""

from __future__ import annotations

import click

from runner.cli import Context


@click.command()
@click.option(
    "--host", envvar="HOST", default="127.0.0.1", show_default=True, help="Address to listen on (env HOST)."
)
@click.option(
    "--port",
    envvar="PORT",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on (env PORT).",
)
@click.option(
    "--workers",
    envvar="RUNNER_WORKERS",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="Requests served at once by each process: its worker threads (env RUNNER_WORKERS). Its "
    "connection pool holds up to this many connections unless RUNNER_POOL_MAX_SIZE says otherwise.",
)
@click.option(
    "--processes",
    envvar="RUNNER_PROCESSES",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes sharing the port, each with its own threads and pool (env RUNNER_PROCESSES).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    envvar="RUNNER_LOG_FORMAT",
    default="text",
    show_default=True,
    help="One line per request, as text or JSON (env RUNNER_LOG_FORMAT).",
)
@click.pass_obj
def serve(obj: Context, host: str, port: int, workers: int, processes: int, log_format: str) -> None:
    """Serve the Stripe webhook, the checkout API, /healthz, /metrics and /dashboard.

    Configuration comes from the environment (STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET, JWT_SECRET,
    SERVICE_TOKEN, ...; see the README). SIGTERM or Ctrl-C stops accepting connections, lets running
    requests finish and closes the database pools. Request bodies are read before a worker thread is taken
    (RUNNER_BODY_TIMEOUT, then 408); JWT_SECRET and the tokens must be at least 32 bytes. The server is
    granian; the app is plain WSGI, so gunicorn or granian can also run it directly (without the slow-client
    protection: put a buffering proxy in front): granian --interface wsgi --factory runner.service:create_app

    \b
    Examples:
      runner serve --port 8000
      PORT=8080 runner serve --host 0.0.0.0 --workers 16 --log-format json
      runner serve --host 0.0.0.0 --processes 2 --workers 8
      stripe listen --forward-to localhost:8000/api/payments/webhook
    """
    import os

    from runner.settings import Settings

    settings = Settings.from_env()
    pool_max = settings.pool_max_size if os.environ.get("RUNNER_POOL_MAX_SIZE") else workers
    if not obj._database_url and settings.stripe_webhook_secrets:  # embedded: the superuser seeds, once
        from runner.payments import webhook_secrets

        with obj.connect("serve") as conn:
            webhook_secrets.seed_from_env(conn, settings.stripe_webhook_secrets)
    # Embedded: a login role of checkout_app, not the superuser (DATABASE_URL is used as given).
    settings = settings.with_(
        database_url=obj.component_url("app_role"),
        log_format=log_format,
        pool_max_size=pool_max,
        pool_min_size=min(settings.pool_min_size, pool_max),
    )
    from runner.web import server

    server.run(settings, host, port, workers, processes, log_format)
