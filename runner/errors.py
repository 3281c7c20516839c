"""The runner's exceptions. The CLI and the web layer map them to exit codes and HTTP statuses."""

from __future__ import annotations


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


class DriftError(RunnerError):
    """An applied versioned file has been edited since it was applied."""

    exit_code = 4


class LockTimeout(RunnerError):
    """Another process held the apply lock for longer than the timeout."""

    exit_code = 5


class VerifyFailed(RunnerError):
    """One or more verification checks failed."""


class ReportError(RunnerError):
    """A report does not exist or its header is malformed."""

    exit_code = 2


class ReportParameterError(ReportError):
    """A report parameter is unknown or its value is not of the declared type."""


class HealthCheckFailed(RunnerError):
    """`runner doctor` found checks at or above the --fail-on level."""


# -- scheduled jobs and email (runner/jobs.py, runner/mail.py, runner/schedule.py) ----------------------


class JobOptionError(RunnerError):
    """A job was given a bad option (batch size, retention, schedule); nothing was changed."""


class JobFailed(RunnerError):
    """A job run failed; what earlier batches did is kept and the run is recorded as failed."""


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
