"""A moto service whose packages are not installed: one clear error naming them and the fix.

The default install has moto's server and what the local Fargate's own services need, not
``moto[server]`` (every service's packages). A request for one of moto's other services
that needs more (CloudFormation, Cognito, Glue, ...) would otherwise meet an ``ImportError``
inside moto's dispatcher: an HTTP 500 that clients retry, then report without the cause.
It is answered instead with HTTP 501 ``NotImplemented`` (not retried) naming the missing
module and ``pip install 'moto[server]'``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from xml.sax.saxutils import escape

CODE = "NotImplemented"
FIX = "pip install 'moto[server]'"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def install(server: Any) -> None:
    """Make a started ``moto.server.ThreadedMotoServer``'s dispatcher answer for services
    whose packages are missing (call before any middleware wraps the dispatcher)."""
    dispatcher = server._server.app  # moto's DomainDispatcherApplication
    create_app = dispatcher.create_app

    def create(service: str) -> WSGIApp:
        try:
            return create_app(service)
        except ImportError as error:
            return unavailable(service, error.name or str(error))

    dispatcher.create_app = create


def unavailable(service: str, package: str) -> WSGIApp:
    """A WSGI app refusing every request for moto's ``service``, which needs ``package``
    (a module name, as the ``ImportError`` gives it)."""
    message = (
        f"The local Fargate cannot serve {service}: moto needs the module {package} "
        f"for it, which is not installed (the default install has only what the "
        f"local Fargate's own services need). Install it: {FIX}"
    )

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))  # keep-alive
        headers = [("x-amzn-ErrorType", CODE)]
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            # Query and EC2 protocols: clients parse an XML error.
            body = (
                f"<ErrorResponse><Error><Code>{CODE}</Code><Message>{escape(message)}"
                "</Message></Error></ErrorResponse>"
            ).encode()
            headers.append(("Content-Type", "text/xml"))
        else:
            body = json.dumps({"__type": CODE, "message": message}).encode()
            headers.append(("Content-Type", "application/json"))
        headers.append(("Content-Length", str(len(body))))
        start_response("501 Not Implemented", headers)
        return [body]

    return app
