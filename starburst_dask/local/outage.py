"""The endpoint unreachable for a while, as a client meets an AWS outage.

During an outage the endpoint's port refuses connections (botocore:
``EndpointConnectionError``) and the connections open when it began are closed (an answer
in flight is lost: ``ConnectionClosedError``); no HTTP answer is sent. The port stays held,
so the endpoint returns at the same address. Tasks keep running and changing state
meanwhile: their processes, logs and metadata endpoint do not go through it, so a task
that stopped during the outage is STOPPED when the endpoint answers again.

The werkzeug server's own thread does the work, between two polls of its socket
(``service_actions``), so its loop never polls a socket being replaced.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import threading
from typing import Any


class Endpoint:
    """A socketserver's listening port, which can refuse connections for a while.

    Parameters
    ----------
    server : socketserver.TCPServer
        A threading server, serving (``serve_forever``) in a thread of its own.
    """

    def __init__(self, server: socketserver.TCPServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()  # connections being served
        self._up = threading.Event()  # connections accepted
        self._up.set()
        self._asked = threading.Event()  # an outage asked for, not begun yet
        self._down = threading.Event()  # connections refused
        self._end = threading.Event()  # the outage should end
        self._seconds: float | None = None
        served, finished = server.process_request, server.shutdown_request

        def process_request(request: Any, address: Any) -> None:
            with self._lock:
                self._open.add(request)
            served(request, address)

        def shutdown_request(request: Any) -> None:
            with self._lock:
                self._open.discard(request)
            finished(request)

        # Instance attributes: this server only.
        server.process_request = process_request  # type: ignore[method-assign, assignment]
        server.shutdown_request = shutdown_request  # type: ignore[method-assign]
        server.service_actions = self._service_actions  # type: ignore[method-assign]

    @property
    def reachable(self) -> bool:
        """Whether the endpoint accepts connections (no outage now)."""
        return self._up.is_set()

    def wait_reachable(self, timeout: float | None = None) -> bool:
        """Wait until the endpoint accepts connections; whether it does."""
        return self._up.wait(timeout)

    def cut(self, seconds: float | None = None) -> None:
        """Refuse connections from now on, for ``seconds`` (``None``: until :meth:`restore`).

        Returns once connections are refused.
        """
        if not self._up.is_set():
            raise RuntimeError("the endpoint is unreachable already")
        self._seconds = seconds
        self._end.clear()
        self._down.clear()
        self._up.clear()
        self._asked.set()
        # Wake the server's loop (it polls its socket every half second otherwise): it
        # serves this connection, then begins the outage.
        with socket.create_connection(self._server.socket.getsockname()):
            pass
        self._down.wait()

    def restore(self) -> None:
        """End the outage now (if one is on), and return once connections are accepted."""
        if self._up.is_set():
            return
        self._end.set()
        self._up.wait()

    def _service_actions(self) -> None:
        """In the server's thread, between two polls: begin and hold an asked-for outage."""
        if not self._asked.is_set():
            return
        listening = self._server.socket
        address = listening.getsockname()
        # The listening socket's descriptor is replaced by a bound socket that does not
        # listen: the kernel refuses connections, and no other process can take the port.
        held = socket.socket(listening.family, socket.SOCK_STREAM)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAITs
        os.dup2(held.fileno(), listening.fileno(), inheritable=False)
        held.close()
        listening.bind(address)
        with self._lock:
            open_ = list(self._open)
        for connection in open_:  # their threads see the end of the stream and finish
            with contextlib.suppress(OSError):  # closed meanwhile
                connection.shutdown(socket.SHUT_RDWR)
        self._down.set()
        self._asked.clear()
        self._end.wait(self._seconds)
        listening.listen(self._server.request_queue_size)
        self._down.clear()
        self._up.set()
