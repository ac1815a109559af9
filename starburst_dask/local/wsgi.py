"""What the local Fargate's own AWS services (WSGI middleware in front of moto) share."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterable
from typing import Any

#: The region in a SigV4 ``Authorization`` header's credential scope.
_SIGNED_REGION = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


def signed_region(environ: dict[str, Any]) -> str | None:
    """The region a request was signed for, if it was signed."""
    found = _SIGNED_REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
    return found.group(1) if found else None


def json_answer(start_response: Callable, status: int, body: dict[str, Any]) -> list[bytes]:
    """An AWS JSON-protocol answer (HTTP 200, or 400 for an error body)."""
    payload = json.dumps(body).encode()
    start_response(
        f"{status} {'OK' if status == 200 else 'Bad Request'}",
        [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("Content-Length", str(len(payload))),
        ],
    )
    return [payload]


def drop(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
    """Close the connection without an answer (the server then drops the response): what a
    client meets where AWS has no endpoint, the nearest local equivalent of a name that
    does not resolve."""
    connection = environ.get("werkzeug.socket")
    if connection is not None:
        connection.shutdown(socket.SHUT_RDWR)
    start_response("500 Internal Server Error", [("Content-Length", "0")])
    return []
