"""Our side of AWS's API rate limits: token buckets we draw from before each call.

AWS's buckets are per account and region, so the project's calls against one limit draw
from one bucket in this process (:func:`shared`), whichever cluster or poller makes them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from .. import fargate
from ..aws.throttling import TokenBucket

#: Fraction of AWS's refill rates we pace ourselves to: the buckets are AWS's, and a call
#: reaches them a little after it leaves, so pacing at 100% gets throttled.
PACING = 0.95

#: Seconds a wait for tokens takes at least: a wait computed as a rounding error's worth
#: would not let a clock move.
MIN_WAIT = 0.001

_shared: dict[tuple[str, str], TokenBucket] = {}
_lock = threading.Lock()


def bucket(limit: str) -> TokenBucket:
    """A fresh bucket for ``limit`` (a key of ``fargate.RATE_LIMITS``), paced below AWS's."""
    burst, rate = fargate.RATE_LIMITS[limit]
    return TokenBucket(burst, rate * PACING)


def shared(limit: str, region: str) -> TokenBucket:
    """This process's one bucket for ``limit`` in ``region``: every caller shares it."""
    with _lock:
        return _shared.setdefault((limit, region), bucket(limit))


async def pace(
    *buckets: TokenBucket,
    n: float = 1,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> None:
    """Wait until ``n`` tokens can be taken from every one of ``buckets``, and take them."""
    while True:
        taken: list[TokenBucket] = []
        wait = 0.0
        for b in buckets:
            wait = b.take(n)
            if wait:
                break
            taken.append(b)
        else:
            return
        for b in taken:  # all or none: a call goes ahead only within every limit
            b.give(n)
        await sleep(max(wait, MIN_WAIT))
