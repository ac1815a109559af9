"""Give a local Fargate task process its own address, as its ENI would on AWS.

The local Fargate puts this directory first on ``PYTHONPATH`` and sets
``STARBURST_LOCAL_TASK_IP`` for each task process. Every loopback address is usable
on Linux, so binding wildcard addresses and source-address discovery are redirected to
the task's address: ``dask scheduler`` and ``dask worker`` then listen on and advertise
it without any command-line change. Without the variable this module does nothing.
Standard library only: it runs at interpreter start-up, before anything else.
"""

import errno
import ipaddress
import os
import socket

_IP = os.environ.get("STARBURST_LOCAL_TASK_IP")
# Routing: VPC destinations see the private address; others ("the internet") the
# task's public address or its NAT gateway's, or have no route; link-local services
# (the metadata endpoint) are reached directly.
_VPC = ipaddress.ip_network(os.environ.get("STARBURST_LOCAL_VPC_CIDR") or "127.0.0.0/8")
_INTERNET_SOURCE = os.environ.get("STARBURST_LOCAL_INTERNET_SOURCE", _IP)
_LINK_LOCAL = os.environ.get("STARBURST_LOCAL_LINK_LOCAL", "").split(",")
_WILDCARDS = (None, "", "0.0.0.0", "::")


def _install(ip: str) -> None:
    getaddrinfo = socket.getaddrinfo
    bind = socket.socket.bind
    connect = socket.socket.connect

    def task_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        # A passive lookup asks "where do I listen?": only the task's address, IPv4.
        if host in _WILDCARDS and family in (0, socket.AF_INET):
            return getaddrinfo(ip, port, socket.AF_INET, type, proto, flags)
        return getaddrinfo(host, port, family, type, proto, flags)

    def task_bind(self, address):
        if self.family == socket.AF_INET and address[0] in ("", "0.0.0.0"):
            address = (ip, *address[1:])
        return bind(self, address)

    def task_connect(self, address):
        if self.family == socket.AF_INET and self.getsockname()[1] == 0:
            host = address[0]
            if self.type == socket.SOCK_DGRAM:
                # The "which address routes out" trick (UDP connect, getsockname):
                # answer the task's address; off-host targets have no route here.
                bind(self, (ip, 0))
                if not host.startswith("127."):
                    address = (ip, *address[1:])
            elif host.startswith("127."):
                # Outgoing connections come from the address AWS would show: see _source.
                source = _source(ip, host, address[1])
                if source:
                    bind(self, (source, 0))
        return connect(self, address)

    socket.getaddrinfo = task_getaddrinfo
    # Patched on the class on purpose: every socket the task's code makes binds and connects
    # as the task's ENI.
    socket.socket.bind = task_bind  # type: ignore[method-assign]
    socket.socket.connect = task_connect  # type: ignore[method-assign]


def _source(ip, host, port):
    """The source address of a connection to loopback ``host``; raises without a route."""
    try:
        if ipaddress.ip_address(host) in _VPC:
            return ip
    except ValueError:  # a name, not an address: resolved elsewhere
        return ip
    if f"{host}:{port}" in _LINK_LOCAL:
        return None
    if _INTERNET_SOURCE:
        return _INTERNET_SOURCE
    raise OSError(errno.ENETUNREACH, os.strerror(errno.ENETUNREACH))


if _IP:
    _install(_IP)

# The task's image: only the packages it contains can be imported (see _image.py).
__import__("_image").restrict()
