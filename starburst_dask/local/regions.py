"""Regions AWS does not have get no endpoint: a request signed for one is dropped.

AWS's endpoints are per region (``<service>.<region>.amazonaws.com``): a client
configured for a region AWS does not have resolves a name that does not exist and cannot
connect. The local Fargate answers every region on one address, so a request signed for
a region that none of AWS's partitions lists (botocore's endpoint table) gets its
connection closed without an answer, as a Price List request outside the Price List's
regions does (:mod:`.pricing`), instead of moto's HTTP 500.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import botocore.loaders

from .wsgi import drop, signed_region

#: Requests dropped, by the region they were signed for (for tests).
dropped: Counter[str] = Counter()


@functools.cache
def regions() -> frozenset[str]:
    """Every region of every AWS partition, as botocore's endpoint table lists them."""
    table = botocore.loaders.create_loader().load_data("endpoints")
    return frozenset(r for partition in table["partitions"] for r in partition["regions"])


class RegionMiddleware:
    """WSGI middleware dropping requests signed for a region AWS does not have."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        region = signed_region(environ)
        if region and region not in regions():
            dropped[region] += 1
            return drop(environ, start_response)
        return self.app(environ, start_response)


def install(server: Any) -> None:
    """Drop requests for regions AWS does not have on a ``ThreadedMotoServer``."""
    wsgi = server._server  # the werkzeug server; its ``app`` is moto's dispatcher
    if not isinstance(wsgi.app, RegionMiddleware):
        wsgi.app = RegionMiddleware(wsgi.app)
