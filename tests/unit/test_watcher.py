"""TaskWatcher through outages: the poller retries with capped back-off and never dies.

ECS is a fake whose DescribeTasks fails as a client does when the endpoint does not
answer (botocore's connection errors) or throttles, then answers; every request is
validated against ECS's model. Time is a fake clock that moves on every sleep.
"""

import asyncio
import logging

import botocore.session
from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.validate import validate_parameters

from starburst_dask.ecs import tasks
from starburst_dask.ecs.watcher import TaskWatcher

from .stubs import FakeClock, client_error, task_arn

CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/starburst-dask"
URL = "https://ecs.us-east-1.amazonaws.com/"


class FlakyEcs:
    """DescribeTasks raising each of ``errors`` in turn, then answering from ``status``."""

    _model = botocore.session.get_session().get_service_model("ecs")

    def __init__(self, errors, status):
        self.errors = list(errors)
        self.status = status
        self.calls = 0

    async def describe_tasks(self, **params):
        validate_parameters(params, self._model.operation_model("DescribeTasks").input_shape)
        self.calls += 1
        await asyncio.sleep(0)
        if self.errors:
            raise self.errors.pop(0)
        return {
            "tasks": [{"taskArn": a, "lastStatus": self.status[a]} for a in params["tasks"]],
            "failures": [],
        }


def outage(n):
    """``n`` errors as botocore raises them when the endpoint does not answer."""
    kinds = [
        EndpointConnectionError(endpoint_url=URL, error="Connection refused"),
        ConnectTimeoutError(endpoint_url=URL, error="timed out"),
        ReadTimeoutError(endpoint_url=URL, error="Read timed out"),
        client_error("ThrottlingException", "Rate exceeded", "DescribeTasks"),
    ]
    return [kinds[i % len(kinds)] for i in range(n)]


def test_an_outage_is_retried_with_capped_backoff_then_reconciled(caplog):
    caplog.set_level(logging.INFO, logger="starburst_dask.ecs.watcher")
    first, second = task_arn(), task_arn()
    ecs = FlakyEcs(outage(12), {first: "STOPPED", second: "RUNNING"})
    clock, stopped = FakeClock(), []

    async def main():
        heard = asyncio.Event()

        def on_stopped(task):
            stopped.append(task)
            heard.set()

        watcher = TaskWatcher(
            ecs, CLUSTER, 1.0, on_stopped, max_backoff=8.0, sleep=clock.sleep, clock=clock
        )
        watcher.watch([first, second])
        await heard.wait()
        assert watcher.outage is None
        await watcher.close()

    asyncio.run(main())
    assert [t["taskArn"] for t in stopped] == [first]  # the task that died meanwhile
    assert ecs.calls >= 13  # 12 failed, then answers
    retries = clock.slept[1:13]
    assert all(0.5 <= d <= 8.0 for d in retries)
    assert max(retries) > 4.0  # grew to the cap...
    assert retries[-1] <= 8.0  # ...and stayed under it
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert "EndpointConnectionError" in warnings[0]
    assert "did not answer" in warnings[0]
    assert "answers again after" in warnings[1] and "12 failed polls" in warnings[1]


def test_the_poller_outlives_any_error_and_a_failing_handler():
    arn = task_arn()
    ecs = FlakyEcs([RuntimeError("unexpected"), OSError("reset")], {arn: "STOPPED"})
    clock = FakeClock()

    def handler(task):
        raise KeyError("a bug in a handler")

    async def main():
        watcher = TaskWatcher(ecs, CLUSTER, 1.0, handler, sleep=clock.sleep, clock=clock)
        watcher.watch([arn])
        task = await watcher.stopped(arn, timeout=3600)
        poller = watcher._poller
        await poller
        await watcher.close()
        return task, poller

    task, poller = asyncio.run(main())
    assert task["lastStatus"] == "STOPPED"
    assert poller.exception() is None  # it ended because nothing is left to watch


def test_waiting_for_a_stop_gives_up_when_the_endpoint_does_not_answer():
    arn = task_arn()
    ecs = FlakyEcs(outage(1000), {arn: "RUNNING"})
    clock = FakeClock()

    async def main():
        watcher = TaskWatcher(ecs, CLUSTER, 1.0, sleep=clock.sleep, clock=clock)
        watcher.watch([arn])
        described = await watcher.stopped(arn, timeout=3600)
        assert watcher.outage is not None and watcher.outage.unreachable
        await watcher.close()  # no stale error
        return described

    assert asyncio.run(main()) is None


def test_stop_tasks_names_the_tasks_the_endpoint_did_not_answer_for(caplog):
    arns = [task_arn(), task_arn()]

    class DownEcs:
        async def stop_task(self, **params):
            raise EndpointConnectionError(endpoint_url=URL, error="Connection refused")

    caplog.set_level(logging.WARNING, logger="starburst_dask.ecs.tasks")
    unstopped = asyncio.run(tasks.stop_tasks(DownEcs(), CLUSTER, arns, "cluster closed"))
    assert unstopped == arns
    [warning] = caplog.records
    assert "did not answer" in warning.getMessage()
    assert all(tasks.task_id(a) in warning.getMessage() for a in arns)


def test_a_task_stopping_is_news_once_at_its_first_sign_then_stopped_at_stopped():
    arn = task_arn()
    states = iter(
        [
            {"lastStatus": "RUNNING", "desiredStatus": "RUNNING"},
            {"lastStatus": "RUNNING", "desiredStatus": "STOPPED"},  # the first sign
            {"lastStatus": "DEPROVISIONING", "desiredStatus": "STOPPED"},
            {"lastStatus": "STOPPED", "desiredStatus": "STOPPED"},
        ]
    )
    heard: list[tuple[str, str]] = []

    class Ecs:
        async def describe_tasks(self, **params):
            await asyncio.sleep(0)
            return {"tasks": [{"taskArn": arn, **next(states)}], "failures": []}

    async def main():
        clock = FakeClock()
        done = asyncio.Event()

        def on_stopped(task):
            heard.append(("stopped", task["lastStatus"]))
            done.set()

        watcher = TaskWatcher(
            Ecs(),
            CLUSTER,
            1.0,
            on_stopped,
            on_stopping=lambda task: heard.append(("stopping", task["lastStatus"])),
            sleep=clock.sleep,
            clock=clock,
        )
        watcher.watch([arn])
        await done.wait()
        await watcher.close()

    asyncio.run(main())
    assert heard == [("stopping", "RUNNING"), ("stopped", "STOPPED")]
