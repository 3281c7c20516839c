"""The runner's exceptions. The CLI and the web layer map them to exit codes and HTTP statuses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class RunnerError(Exception):
    """Base class: a problem the user can act on, reported as one line."""

    exit_code = 1


class ConfigError(RunnerError):
    """The project or environment configuration is invalid."""


class ProjectError(RunnerError):
    """The SQL project on disk is malformed (names, directives, dependencies)."""


class TemplateError(ProjectError):
    """A Jinja template failed to render."""


class DatabaseUnavailable(RunnerError):
    """The database cannot be reached."""


class EmbeddedServerError(RunnerError):
    """The embedded PostgreSQL server could not be started or stopped."""


class MigrationError(RunnerError):
    """A SQL file failed while being applied; nothing of it was kept."""

    def __init__(self, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate  # the database's error code, when the database raised it


class DriftError(RunnerError):
    """An applied versioned file has been edited since it was applied."""

    exit_code = 4


class LockTimeout(RunnerError):
    """Another process held the lock for longer than the timeout; `holder` says who (pid, application, ...)."""

    exit_code = 5

    def __init__(self, message: str, holder: str = ""):
        super().__init__(message)
        self.holder = holder


class AdoptionError(RunnerError):
    """`runner adopt` cannot go on (something to fix by hand, or a step that kept failing); safe to re-run."""


class VerifyFailed(RunnerError):
    """One or more verification checks failed."""


class ReportError(RunnerError):
    """A report does not exist or its header is malformed."""

    exit_code = 2


class ReportParameterError(ReportError):
    """A report parameter is unknown or its value is not of the declared type."""


class ProjectNotApplied(RunnerError):
    """The database lacks the project's tables or functions: `runner apply` has not run there."""


class HealthCheckFailed(RunnerError):
    """`runner doctor` found checks at or above the --fail-on level."""


# -- data tests and lint (runner/quality/datatests.py, runner/quality/lint.py) -------------------------


class DataTestSelectionError(RunnerError):
    """`--select` matched no data test."""

    exit_code = 2


class DataTestsFailed(RunnerError):
    """One or more data tests returned rows (or could not run)."""


class LintFailed(RunnerError):
    """`runner lint` found problems in the project."""


class DemoRefused(RunnerError):
    """`runner demo` will not write into this database (not the embedded default, or not empty)."""


class DocsError(RunnerError):
    """`runner docs` cannot write the site there (a file, or a folder holding something else)."""


# -- scheduled jobs and email (runner/jobs/: tasks.py, mail.py, schedule.py, pg_cron.py) ---------------


class JobOptionError(RunnerError):
    """A job was given a bad option (batch size, retention, schedule); nothing was changed."""


class JobFailed(RunnerError):
    """A job run failed; what earlier batches did is kept and the run is recorded as failed."""


class PgCronError(RunnerError):
    """pg_cron is missing here, or the project is not applied: nothing was scheduled."""


class MailError(RunnerError):
    """The SMTP server could not be reached or refused the login; the queued emails stay queued."""


# -- checkout API and webhook (runner/payments/, runner/web/) ---------------
# `http_status` and `code` are what the web layer answers: {"error": {"code": ..., "message": ...}}.


class InvalidRequest(RunnerError):
    """A request's input is missing or malformed; nothing was changed."""

    http_status = 400
    code = "invalid_request"


class Unauthorized(RunnerError):
    """No credentials, or credentials that do not verify."""

    http_status = 401
    code = "unauthorized"


class Forbidden(RunnerError):
    """Valid credentials that do not open this route (a user's token on /dashboard)."""

    http_status = 403
    code = "forbidden"


class RateLimited(RunnerError):
    """Too many requests of one kind from one user; `retry_after` seconds until the next is allowed."""

    http_status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(RunnerError):
    """The resource does not exist or does not belong to the caller."""

    http_status = 404
    code = "not_found"


class Conflict(RunnerError):
    """The request is valid but the resource's state does not allow it (an illegal status change)."""

    http_status = 409
    code = "conflict"


class PaymentProviderError(RunnerError):
    """Stripe failed or could not be reached; the checkout stays pending and can be retried."""

    http_status = 502
    code = "payment_provider_error"


class WebhookSignatureError(RunnerError):
    """A webhook's Stripe-Signature is missing, forged, stale or from the future; nothing was processed."""

    http_status = 400
    code = "invalid_signature"


class WebhookSecretNotInDatabase(RunnerError):
    """The service verified a delivery but the database did not (its webhook_secrets lack the secret).

    A deployment mistake: 503, so Stripe retries once `runner webhook secret set` has added it."""

    http_status = 503
    code = "webhook_secret_not_in_database"


# -- database errors mapped to the runner's (psycopg imported only when one is handled) ---------------


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# Beyond class 08: shutting down, cannot connect now, too many connections, the database is gone.
CONNECTION_STATES = frozenset({"57P01", "57P02", "57P03", "53300", "3D000"})


def connection_lost(exc: BaseException) -> bool:
    """True when an error means the database is unreachable (retry later), not that a statement failed.

    psycopg raises OperationalError for both; SQLSTATE tells them apart (class 08 connection exception,
    57P01-57P03 shutdown / cannot connect now, 53300 too many connections; none: the socket broke)."""
    import psycopg

    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith("08") or state in CONNECTION_STATES


@contextmanager
def sql_errors() -> Iterator[None]:
    """Turn the SQL functions' documented SQLSTATEs into the runner's errors (and so into HTTP statuses)."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        if connection_lost(exc):
            raise DatabaseUnavailable(f"database unavailable: {first_line(exc)}") from exc
        message = (exc.diag.message_primary if exc.diag else None) or str(exc)
        if exc.sqlstate in ("22023", "22P02", "22001"):
            raise InvalidRequest(message) from None
        if exc.sqlstate == "P0002":
            raise NotFound(message) from None
        if exc.sqlstate == "55000":
            raise Conflict(message) from None
        raise
