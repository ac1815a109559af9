"""What the local Fargate's own AWS services (WSGI middleware in front of moto) share."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from xml.sax.saxutils import escape

from botocore.model import OperationModel

from . import wire

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


def error_answer(
    request: wire.Request, code: str, message: str, start_response: Callable, status: int = 400
) -> Iterable[bytes]:
    """An error in the request's protocol: JSON ``__type``, or the XML of query, EC2 or
    REST-XML services."""
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", request_id)]
    if request.protocol in ("json", "rest-json"):
        operation: OperationModel = request.operation
        version = operation.metadata.get("jsonVersion", "1.1")
        body = json.dumps({"__type": code, "message": message}).encode()
        headers += [
            ("Content-Type", f"application/x-amz-json-{version}"),
            ("x-amzn-ErrorType", code),
        ]
        if operation.metadata.get("awsQueryCompatible") is not None:
            headers.append(("x-amzn-query-error", f"{code};Sender"))
    else:
        text = f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        if request.protocol == "ec2":
            xml = (
                f"<Response><Errors><Error>{text}</Error></Errors>"
                f"<RequestID>{request_id}</RequestID></Response>"
            )
        elif request.protocol == "query":
            namespace = request.operation.metadata.get("xmlNamespace", "")
            xml = (
                f'<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type>{text}'
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            )
        else:
            xml = f"<Error>{text}<RequestId>{request_id}</RequestId></Error>"
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n{xml}'.encode()
        headers.append(("Content-Type", "text/xml"))
    headers.append(("Content-Length", str(len(body))))
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [body]
