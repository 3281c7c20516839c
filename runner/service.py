"""The documented WSGI entry point, kept where deployments name it:
`gunicorn 'runner.service:create_app()'` or `granian --interface wsgi --factory runner.service:create_app`.
The app itself lives in `runner.web.app`."""

from runner.web.app import create_app

__all__ = ["create_app"]
