"""AWS's public-address service for the local Fargate: ``GET /checkip``.

``https://checkip.amazonaws.com`` answers the address a request comes from, as text and
a newline. The local Fargate answers the same on its own endpoint, at :data:`PATH`: the
source address of the request, which is ``127.0.0.1`` for this machine (the client,
outside every VPC: see ``docs/local-fargate.md``, "The network: addresses").
:class:`LocalFargate` points ``starburst.setup.checkip-url`` there while it runs, so
no test asks the internet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

PATH = "/checkip"


class CheckIpMiddleware:
    """WSGI middleware answering ``GET /checkip``; other requests go to ``app``.

    Parameters
    ----------
    app : callable
        The WSGI app to pass other requests to.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if (
            environ.get("PATH_INFO") != PATH
            or environ.get("REQUEST_METHOD") != "GET"
            or "HTTP_AUTHORIZATION" in environ
        ):
            return self.app(environ, start_response)
        body = f"{environ['REMOTE_ADDR']}\n".encode()
        start_response(
            "200 OK",
            [("Content-Type", "text/plain;charset=UTF-8"), ("Content-Length", str(len(body)))],
        )
        return [body]


def install(server: Any) -> None:
    """Answer ``/checkip`` on a running ``moto.server.ThreadedMotoServer``."""
    wsgi = server._server  # the werkzeug server; its ``app`` is moto's dispatcher
    if not isinstance(wsgi.app, CheckIpMiddleware):
        wsgi.app = CheckIpMiddleware(wsgi.app)
