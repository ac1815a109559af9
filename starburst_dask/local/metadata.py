"""The task metadata endpoint (version 4) of the local Fargate.

Every Fargate task can read its own description at ``$ECS_CONTAINER_METADATA_URI_V4``:
``/task`` for the task, the bare URI for its container. Local tasks get the same from
this small HTTP server on 127.0.0.1, with ``/v4/<task id>`` as their URI. It also serves
a task role's credentials, at ``/v2/credentials/<id>`` (``task_role.py``), as ECS's
credentials endpoint does.
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
    credentials : callable
        Returns the credentials document of an id, or ``None``.
    """

    def __init__(
        self,
        lookup: Callable[[str], dict[str, Any] | None],
        credentials: Callable[[str], dict[str, str] | None],
    ) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.lookup = lookup
        self._server.credentials = credentials
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="task-metadata", daemon=True
        )
        self._thread.start()

    def uri(self, task_id: str) -> str:
        """The value of ``ECS_CONTAINER_METADATA_URI_V4`` for a task."""
        return f"{self._base}/v4/{task_id}"

    def credentials_uri(self, endpoint_id: str) -> str:
        """A task role's credentials (``AWS_CONTAINER_CREDENTIALS_FULL_URI``)."""
        return f"{self._base}/v2/credentials/{endpoint_id}"

    @property
    def _base(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Server(ThreadingHTTPServer):
    #: Returns a task's metadata, or ``None``: what :class:`_Handler` serves.
    lookup: Callable[[str], dict[str, Any] | None]
    #: Returns a credentials document, or ``None``.
    credentials: Callable[[str], dict[str, str] | None]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        parts = self.path.strip("/").split("/")  # v4, task id[, task]; v2, credentials, id
        document: dict[str, Any] | None = None
        if len(parts) == 3 and parts[:2] == ["v2", "credentials"]:
            document = self.server.credentials(parts[2])
        elif len(parts) in (2, 3) and parts[0] == "v4" and parts[2:] in ([], ["task"]):
            task = self.server.lookup(parts[1])
            document = task if task is None or parts[2:] else task["Containers"][0]
        if document is None:
            self.send_error(404)
            return
        body = json.dumps(document).encode()
        with suppress(ConnectionError):  # the task was stopped while asking
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per request otherwise."""
