"""A record of every ECS request the local Fargate handled and the answer it gave.

WSGI middleware, outermost: requests are recorded as they arrived (refused ones too) and
answers as they left, so a test can search everything that crossed the wire for text that
must never be there (a private key in a task definition, a RunTask request or a
DescribeTasks answer). Only ECS is recorded; other services pass through untouched.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from . import wire

SERVICE = "ecs"
_ACCESS_KEY = re.compile(r"Credential=([^/]+)/")


@dataclasses.dataclass(frozen=True)
class Exchange:
    """One ECS request and its answer, as text, and the access key that signed it."""

    operation: str
    request: str
    answer: str
    #: The SigV4 credential's access key id ("" unsigned): the client's, or a task's.
    access_key: str = ""


class RecordingMiddleware:
    """Records the ECS requests reaching ``app`` and its answers (:attr:`exchanges`)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []

    @property
    def exchanges(self) -> list[Exchange]:
        """The exchanges so far, oldest first."""
        with self._lock:
            return list(self._exchanges)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if not wire.needs_body(environ):  # REST XML (S3): never ECS
            return self.app(environ, start_response)
        body = wire.read_body(environ)
        try:
            request = wire.decode(environ, body)
        except ValueError:
            request = None
        if request is None or request.service != SERVICE:
            return self.app(environ, start_response)
        answer = b"".join(self.app(environ, start_response))
        signed = _ACCESS_KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
        exchange = Exchange(
            request.operation.name,
            body.decode("utf-8", "replace"),
            answer.decode("utf-8", "replace"),
            signed.group(1) if signed else "",
        )
        with self._lock:
            self._exchanges.append(exchange)
        return [answer]


def install(server: Any) -> RecordingMiddleware:
    """Record the ECS traffic of a running ``moto.server.ThreadedMotoServer`` (outermost)."""
    wsgi = server._server  # the werkzeug server
    if not isinstance(wsgi.app, RecordingMiddleware):
        wsgi.app = RecordingMiddleware(wsgi.app)
    return wsgi.app
