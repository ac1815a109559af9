"""The task metadata endpoint (version 4) of the local Fargate.

Every Fargate task can read its own description at ``$ECS_CONTAINER_METADATA_URI_V4``:
``/task`` for the task, the bare URI for its container. Local tasks get the same from
this small HTTP server on 127.0.0.1, with ``/v4/<task id>`` as their URI.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Environment variable that gives a task its metadata URI, as on AWS.
METADATA_VAR = "ECS_CONTAINER_METADATA_URI_V4"


class MetadataServer:
    """Serves task metadata documents found by ``lookup(task_id)``.

    Parameters
    ----------
    lookup : callable
        Returns the task's metadata (a dict with its ``Containers``), or ``None``.
    """

    def __init__(self, lookup: Callable[[str], dict[str, Any] | None]) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.lookup = lookup
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="task-metadata", daemon=True
        )
        self._thread.start()

    def uri(self, task_id: str) -> str:
        """The value of ``ECS_CONTAINER_METADATA_URI_V4`` for a task."""
        host, port = self._server.socket.getsockname()[:2]
        return f"http://{host}:{port}/v4/{task_id}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Server(ThreadingHTTPServer):
    #: Returns a task's metadata, or ``None``: what :class:`_Handler` serves.
    lookup: Callable[[str], dict[str, Any] | None]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        parts = self.path.strip("/").split("/")  # v4, task id[, task]
        found = len(parts) in (2, 3) and parts[0] == "v4" and parts[2:] in ([], ["task"])
        task = self.server.lookup(parts[1]) if found else None
        if task is None:
            self.send_error(404)
            return
        document = task if parts[2:] else task["Containers"][0]
        body = json.dumps(document).encode()
        with suppress(ConnectionError):  # the task was stopped while asking
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per request otherwise."""
