"""Real aiobotocore clients whose answers a test queues (botocore's Stubber).

The clients are AWS's own, so every request a decision makes is still validated against
AWS's model (parameter names, types, required fields), and every answer queued must have
the shape AWS's model gives it; nothing goes over the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

from aiobotocore.session import get_session
from aiobotocore.stub import AioStubber

REGION = "us-east-1"


@contextlib.asynccontextmanager
async def stubbed(*services: str) -> AsyncIterator[list[tuple[object, AioStubber]]]:
    """``(client, stubber)`` for each service; every queued answer must have been used."""
    session = get_session()
    async with contextlib.AsyncExitStack() as stack:
        pairs = []
        for service in services:
            client = await stack.enter_async_context(session.create_client(
                service, region_name=REGION,
                aws_access_key_id="AKIAUNITTEST", aws_secret_access_key="unit-test-secret",
            ))
            stubber = AioStubber(client)
            stubber.activate()
            pairs.append((client, stubber))
        yield pairs
        for _, stubber in pairs:
            stubber.assert_no_pending_responses()


class FakeClock:
    """A monotonic clock that moves only when told, and on every ``asyncio.sleep``."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


_ids = itertools.count(1)


def task_arn(cluster: str = "starburst-dask") -> str:
    """A task ARN as ECS writes it, a new one each call."""
    return f"arn:aws:ecs:{REGION}:123456789012:task/{cluster}/{next(_ids):032x}"
