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
import queue
import sys
import threading
import time
from http import HTTPStatus
from typing import Any

log = logging.getLogger(__name__)

BODYLESS = ("GET", "HEAD", "OPTIONS", "DELETE")
HEALTH_PATH = "/healthz"


def _resolve(answer: asyncio.Future, result) -> None:
    if not answer.done():  # the request's task may have been cancelled meanwhile (the client went away)
        answer.set_result(result)


class BodyTooLarge(Exception):
    """A body over the limit: answered 413 without reading the rest."""


class BufferedWSGI:
    """An RSGI application (granian's native interface) running a WSGI app on `threads` threads of its own,
    each request's body read in full first, within `body_timeout` seconds and `max_body` bytes.

    Kept lean, since every request passes here: the deadline is one timer that cancels the request's task
    (no extra task per read), and a request goes to a thread through a plain queue, its answer back through
    one call_soon_threadsafe."""

    def __init__(
        self,
        app,
        *,
        threads: int,
        body_timeout: float,
        max_body: int,
        multiprocess: bool = False,
        log_access=None,
    ):
        self.app = app
        self.threads = threads
        self.body_timeout = body_timeout
        self.max_body = max_body
        self.multiprocess = multiprocess
        self.log_access = log_access  # (method, path, status, ms, size, remote) for the answers given here
        self.loop: asyncio.AbstractEventLoop | None = None
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        # /healthz never queues behind requests waiting for a database that does not answer: it has threads
        # of its own, so it can say so within its 2 seconds.
        self._health: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        for work, count, name in (
            (self._work, self.threads, "runner-http"),
            (self._health, 2, "runner-health"),
        ):
            for k in range(count):
                thread = threading.Thread(target=self._serve, args=(work,), name=f"{name}-{k}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        for _ in range(self.threads):
            self._work.put(None)
        for _ in range(2):
            self._health.put(None)
        for thread in self._threads:
            thread.join()

    async def __rsgi__(self, scope, proto) -> None:
        if scope.proto != "http":  # no websockets here
            return
        started = time.perf_counter()
        loop = self.loop or asyncio.get_running_loop()
        try:
            body = await self._read_body(scope, proto, loop)
        except asyncio.CancelledError:  # the deadline's timer cancelled the read
            self._refuse(
                scope,
                proto,
                408,
                "request_timeout",
                f"the request body did not arrive within {self.body_timeout:g} seconds",
                started,
            )
            return
        except BodyTooLarge:
            self._refuse(
                scope,
                proto,
                413,
                "request_entity_too_large",
                f"the request body is over {self.max_body} bytes",
                started,
            )
            return
        except Exception as exc:  # noqa: BLE001 - granian's protocol error: the body ended early, or the client left
            log.debug("request body not read: %s", exc)
            self._refuse(
                scope,
                proto,
                400,
                "invalid_request",
                "the request body ended before its Content-Length",
                started,
            )
            return
        answer = loop.create_future()
        (self._health if scope.path == HEALTH_PATH else self._work).put((answer, scope, body))
        status, headers, payload = await answer
        proto.response_bytes(status, headers, payload)

    async def _read_body(self, scope, proto, loop: asyncio.AbstractEventLoop) -> bytes:
        headers = scope.headers
        length = headers.get("content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                size = -1
            if size > self.max_body:
                raise BodyTooLarge
            if size == 0:
                return b""
        elif "transfer-encoding" not in headers and scope.method in BODYLESS:
            return b""
        deadline = loop.call_later(self.body_timeout, asyncio.current_task().cancel)
        try:
            if length is not None and size > 0:
                return await proto()
            return await self._chunks(proto)
        finally:
            deadline.cancel()

    async def _chunks(self, proto) -> bytes:
        buffer = bytearray()
        async for chunk in proto:
            buffer += chunk
            if len(buffer) > self.max_body:
                raise BodyTooLarge
        return bytes(buffer)

    def _serve(self, work: queue.SimpleQueue) -> None:
        """A worker thread: run the app for each request put on `work`, hand the answer to the event loop."""
        while (item := work.get()) is not None:
            answer, scope, body = item
            try:
                result = self._call(scope, body)
            except Exception:  # the app maps its own errors: this is a bug, logged and answered 500
                log.exception("unhandled error on %s %s", scope.method, scope.path)
                result = (
                    500,
                    [("content-type", "application/json")],
                    b'{"error": {"code": "internal_error", "message": "internal error; it has been logged"}}',
                )
            self.loop.call_soon_threadsafe(_resolve, answer, result)

    def _refuse(self, scope, proto, status: int, code: str, message: str, started: float) -> None:
        import json

        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        try:
            proto.response_bytes(
                status, [("content-type", "application/json"), ("connection", "close")], body
            )
        except Exception as exc:  # noqa: BLE001 - the client is gone already
            log.debug("could not answer %s: %s", status, exc)
            return
        if self.log_access:
            self.log_access(
                scope.method,
                scope.path,
                status,
                round((time.perf_counter() - started) * 1000, 2),
                len(body),
                scope.client.rsplit(":", 1)[0],
            )

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
