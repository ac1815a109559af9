"""Real aiobotocore clients whose answers a test queues (botocore's Stubber).

The clients are AWS's own, so every request a decision makes is still validated against
AWS's model (parameter names, types, required fields), and every answer queued must have
the shape AWS's model gives it; nothing goes over the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import botocore.session
from aiobotocore.session import get_session
from aiobotocore.stub import AioStubber
from botocore.exceptions import ClientError
from botocore.validate import validate_parameters

REGION = "us-east-1"


@contextlib.asynccontextmanager
async def stubbed(*services: str) -> AsyncIterator[list[tuple[object, AioStubber]]]:
    """``(client, stubber)`` for each service; every queued answer must have been used."""
    session = get_session()
    async with contextlib.AsyncExitStack() as stack:
        pairs = []
        for service in services:
            client = await stack.enter_async_context(
                session.create_client(
                    service,
                    region_name=REGION,
                    aws_access_key_id="AKIAUNITTEST",
                    aws_secret_access_key="unit-test-secret",
                )
            )
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


def client_error(code: str, message: str, operation: str = "RunTask") -> ClientError:
    """The exception an aiobotocore client raises for AWS's error answer."""
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class FakeEcs:
    """An ECS client's ``run_task`` answering as ``answer(count, call)`` decides.

    For decisions whose answers depend on the request (how many tasks a call asked for,
    in calls made concurrently), which a queue of fixed answers cannot model. Each
    request is still validated against ECS's model, as the real client does.
    ``answer`` returns ``(started, failure reasons)`` or raises a ``ClientError``.
    """

    _model = botocore.session.get_session().get_service_model("ecs")

    def __init__(self, answer: Callable[[int, int], tuple[int, list[str]]]) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    async def run_task(self, **params: Any) -> dict[str, Any]:
        validate_parameters(params, self._model.operation_model("RunTask").input_shape)
        self.calls.append(params)
        await asyncio.sleep(0)  # a real call yields to the others in flight
        started, reasons = self.answer(params["count"], len(self.calls))
        return {
            "tasks": [{"taskArn": task_arn()} for _ in range(started)],
            "failures": [{"reason": reason} for reason in reasons],
        }

    @property
    def counts(self) -> list[int]:
        return [call["count"] for call in self.calls]
