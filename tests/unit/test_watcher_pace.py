"""TaskWatcher's pace: fast while tasks start or stop, slow once all are steady, within
AWS's DescribeTasks rate, one call per 100 tasks, and waiters woken by the poll that sees
their task change. ECS is a fake whose requests are validated against ECS's model; time
is a fake clock that moves on every sleep.
"""

import asyncio

import botocore.session
from botocore.validate import validate_parameters

from starburst_dask import fargate
from starburst_dask.ecs import watcher as watching
from starburst_dask.ecs.watcher import TaskWatcher

from .stubs import FakeClock, task_arn

CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/starburst-dask"
STEADY = 5.0


class ScriptedEcs:
    """DescribeTasks answering each task's status from ``status`` (a callable of the
    task and the fake time), recording the time and size of every call; each answer
    carries the time of its poll (``polledAt``)."""

    _model = botocore.session.get_session().get_service_model("ecs")

    def __init__(self, clock, status):
        self.clock = clock
        self.status = status
        self.calls: list[tuple[float, int]] = []

    async def describe_tasks(self, **params):
        validate_parameters(params, self._model.operation_model("DescribeTasks").input_shape)
        self.calls.append((self.clock(), len(params["tasks"])))
        await asyncio.sleep(0)
        return {
            "tasks": [
                {"taskArn": a, "lastStatus": self.status(a, self.clock()), "polledAt": self.clock()}
                for a in params["tasks"]
            ],
            "failures": [],
        }


def gaps(calls):
    times = sorted({t for t, _ in calls})
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_polls_are_fast_while_a_task_starts_and_slow_once_all_are_steady():
    clock = FakeClock()
    arn = task_arn()
    start = clock()
    ecs = ScriptedEcs(clock, lambda a, now: "PENDING" if now < start + 10 else "RUNNING")

    async def main():
        watcher = TaskWatcher(ecs, CLUSTER, STEADY, sleep=clock.sleep, clock=clock)
        running = await watcher.running(arn, timeout=3600)
        while clock() < start + 60:
            await clock.sleep(1)
        await watcher.close()
        return running

    running = asyncio.run(main())
    assert running["lastStatus"] == "RUNNING"
    # Woken by the poll that saw RUNNING, at most a busy interval after the change: no
    # wait rounded up to the steady interval.
    ran_at = min(t for t, _ in ecs.calls if t >= start + 10)
    assert running["polledAt"] == ran_at
    assert ran_at - (start + 10) <= watching.BUSY_INTERVAL
    starting = [g for g, (t, _) in zip(gaps(ecs.calls), ecs.calls[1:], strict=False) if t <= ran_at]
    steady = [g for g, (t, _) in zip(gaps(ecs.calls), ecs.calls[1:], strict=False) if t > ran_at]
    assert starting and all(g <= watching.BUSY_INTERVAL + 1e-9 for g in starting)
    assert steady and all(g >= STEADY - 1e-9 for g in steady)


def test_a_stop_asked_polls_fast_again_until_stopped():
    clock = FakeClock()
    arn = task_arn()
    asked: list[float] = []
    ecs = ScriptedEcs(
        clock, lambda a, now: "RUNNING" if not asked or now < asked[0] + 3 else "STOPPED"
    )

    async def main():
        watcher = TaskWatcher(ecs, CLUSTER, STEADY, sleep=clock.sleep, clock=clock)
        await watcher.running(arn, timeout=3600)
        while clock() < 1000 + 20:  # steady for a while
            await clock.sleep(1)
        asked.append(clock())
        watcher.stopping_asked([arn])
        stopped = await watcher.stopped(arn, timeout=3600)
        await watcher.close()
        return stopped

    stopped = asyncio.run(main())
    assert stopped is not None and stopped["lastStatus"] == "STOPPED"
    after = [t for t, _ in ecs.calls if t >= asked[0]]
    # Polls at the busy pace from the stop on (the first one no later than the steady
    # interval's due time), and the STOPPED one within one busy interval of the stop.
    assert after[-1] - (asked[0] + 3) <= watching.BUSY_INTERVAL + 1e-9
    assert all(g <= watching.BUSY_INTERVAL + 1e-9 for g in gaps([(t, 0) for t in after]))


def test_many_starting_tasks_take_one_call_per_hundred_within_the_rate_budget():
    clock = FakeClock()
    arns = [task_arn() for _ in range(2500)]
    start = clock()
    ecs = ScriptedEcs(clock, lambda a, now: "PENDING" if now < start + 30 else "RUNNING")

    async def main():
        watcher = TaskWatcher(ecs, CLUSTER, STEADY, sleep=clock.sleep, clock=clock)
        watcher.watch(arns)
        await watcher.running(arns[-1], timeout=3600)
        await watcher.close()

    asyncio.run(main())
    assert {size for _, size in ecs.calls} == {fargate.DESCRIBE_TASKS_MAX}
    burst, rate = fargate.RATE_LIMITS["cluster-resource-read"]
    share_burst, share_rate = burst * watching.READ_SHARE, rate * watching.READ_SHARE
    # Over any window, no more calls than this poller's share of AWS's bucket allows.
    times = [t for t, _ in ecs.calls]
    for i, t in enumerate(times):
        window = [u for u in times[i:] if u - t <= 10]
        assert len(window) <= share_burst + share_rate * 10
    assert len(times) > share_burst  # the budget was what limited it
