"""The service's front under granian: request bodies are read on the event loop, with a deadline, before a
worker thread is taken; then the WSGI app runs on one of the worker threads with the whole body in memory.

Why: granian's own WSGI interface hands the request to a thread first and lets the app read the body from
the socket there, so a client sending its body one byte at a time holds a thread for as long as it likes,
and as many such clients as threads freeze the service (issue 14). Here a slow body costs a coroutine and
a socket, not a thread: after `body_timeout` seconds the client gets 408 and its connection is closed.
granian's header read timeout (set to the same deadline in runner/web/server.py) does the same for headers.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

log = logging.getLogger(__name__)

BODYLESS = ("GET", "HEAD", "OPTIONS", "DELETE")
HEALTH_PATH = "/healthz"


class BodyTooLarge(Exception):
    """A body over the limit: answered 413 without reading the rest."""


class BufferedWSGI:
    """An RSGI application (granian's native interface) running a WSGI app on a thread pool of `threads`,
    each request's body read in full first, within `body_timeout` seconds and `max_body` bytes."""

    def __init__(self, app, *, threads: int, body_timeout: float, max_body: int, multiprocess: bool = False,
                 log_access=None):
        self.app = app
        self.threads = threads
        self.body_timeout = body_timeout
        self.max_body = max_body
        self.multiprocess = multiprocess
        self.log_access = log_access  # (method, path, status, ms, size, remote) for the answers given here
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="runner-http")
        # /healthz never queues behind requests waiting for a database that does not answer: it has threads
        # of its own, so it can say so within its 2 seconds.
        self.health_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="runner-health")
        self.loop: asyncio.AbstractEventLoop | None = None

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.executor.shutdown(wait=True)
        self.health_executor.shutdown(wait=True)

    async def __rsgi__(self, scope, proto) -> None:
        if scope.proto != "http":  # no websockets here
            return
        started = time.perf_counter()
        try:
            body = await self._read_body(scope, proto)
        except TimeoutError:
            self._refuse(scope, proto, 408, "request_timeout",
                         f"the request body did not arrive within {self.body_timeout:g} seconds", started)
            return
        except BodyTooLarge:
            self._refuse(scope, proto, 413, "request_entity_too_large",
                         f"the request body is over {self.max_body} bytes", started)
            return
        except Exception as exc:  # noqa: BLE001 - the client went away mid-body (granian's protocol error)
            log.debug("request body not read: %s", exc)
            return
        loop = self.loop or asyncio.get_running_loop()
        executor = self.health_executor if scope.path == HEALTH_PATH else self.executor
        try:
            status, headers, payload = await loop.run_in_executor(executor, self._call, scope, body)
        except Exception:  # the app maps its own errors: this is a bug, logged and answered 500
            log.exception("unhandled error on %s %s", scope.method, scope.path)
            status, headers = 500, [("content-type", "application/json")]
            payload = b'{"error": {"code": "internal_error", "message": "internal error; it has been logged"}}'
        proto.response_bytes(status, headers, payload)

    async def _read_body(self, scope, proto) -> bytes:
        headers = scope.headers
        length = headers.get("content-length")
        if length is None and "transfer-encoding" not in headers:
            return b"" if scope.method in BODYLESS else await self._deadline(proto())
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                size = -1
            if size > self.max_body:
                raise BodyTooLarge
            if size == 0:
                return b""
            if size > 0:
                return await self._deadline(proto())
        return await self._deadline(self._chunks(proto))

    async def _deadline(self, awaitable) -> bytes:
        # asyncio.wait, not wait_for: on timeout the read is cancelled without waiting for it to end.
        task = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({task}, timeout=self.body_timeout)
        if not done:
            task.cancel()
            raise TimeoutError
        return task.result()

    async def _chunks(self, proto) -> bytes:
        buffer = bytearray()
        async for chunk in proto:
            buffer += chunk
            if len(buffer) > self.max_body:
                raise BodyTooLarge
        return bytes(buffer)

    def _refuse(self, scope, proto, status: int, code: str, message: str, started: float) -> None:
        import json

        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        proto.response_bytes(status, [("content-type", "application/json"), ("connection", "close")], body)
        if self.log_access:
            self.log_access(scope.method, scope.path, status, round((time.perf_counter() - started) * 1000, 2),
                            len(body), scope.client.rsplit(":", 1)[0])

    def environ(self, scope, body: bytes) -> dict[str, Any]:
        """The WSGI environ of a request (PEP 3333) with its body in memory."""
        server_host, _, server_port = scope.server.rpartition(":")
        remote_host, _, remote_port = scope.client.rpartition(":")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": scope.path.encode("utf-8", "surrogateescape").decode("latin-1"),
            "QUERY_STRING": scope.query_string,
            "SERVER_NAME": server_host,
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": remote_host,
            "REMOTE_PORT": remote_port,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": self.multiprocess,
            "wsgi.run_once": False,
        }
        for name, value in scope.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_LENGTH" or key == "TRANSFER_ENCODING":
                continue  # the body is whole: its length is the one above
            if key != "CONTENT_TYPE":
                key = "HTTP_" + key
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _call(self, scope, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Run the WSGI app on this (worker) thread: (status, headers, body)."""
        answer: list[Any] = []

        def start_response(status: str, headers, exc_info=None):
            answer[:] = [int(status.split(" ", 1)[0]), headers]
            return lambda data: None  # the legacy write(): unused by Flask

        result = self.app(self.environ(scope, body), start_response)
        try:
            payload = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not answer:
            return 500, [("content-type", "text/plain")], HTTPStatus(500).phrase.encode()
        return answer[0], answer[1], payload
