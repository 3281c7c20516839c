"""checkout-sessions runner: renders and applies the SQL project, runs jobs, reports and the service."""

__version__ = "0.1.0"
