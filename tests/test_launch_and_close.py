"""Workers launched with the scheduler, polls that follow the work, and a close
that stops each task once: at the AWS API of the local Fargate (its recorded requests,
its call counters and ECS's own timestamps)."""

import collections
import dataclasses
import json
import threading
import time

import boto3
import psutil
import pytest
from distributed import Client
from helpers import wait_until

from starburst_dask import FargateCluster, TaskFailedError
from starburst_dask.ecs.tasks import TAG_ROLE

#: Seconds tasks stay PROVISIONING here, as on AWS (where finding
#: capacity, attaching the ENI and pulling the image take tens of seconds).
HOLD = 4.0
CLUSTER = "starburst-dask"


@pytest.fixture
def ecs(local_fargate):
    return boto3.client("ecs")


@pytest.fixture
def slow_provisioning(local_fargate):
    """Tasks stay ``HOLD`` seconds in PROVISIONING once their ENI exists (their private IP
    known, as on AWS), through the local Fargate's latency setting."""
    before = local_fargate.latency
    local_fargate.latency = dataclasses.replace(before, eni_attached=(HOLD, HOLD))
    yield
    local_fargate.latency = before


def requests(local_fargate, operation, started_by=None):
    """The recorded ECS requests of ``operation`` (position in the record, body)."""
    found = []
    for i, exchange in enumerate(local_fargate.recorded()):
        if exchange.operation == operation:
            body = json.loads(exchange.request)
            if started_by is None or body.get("startedBy") == started_by:
                found.append((i, body))
    return found


def statuses_seen(local_fargate, arn):
    """DescribeTasks answers about ``arn``: (position in the record, its lastStatus)."""
    seen = []
    for i, exchange in enumerate(local_fargate.recorded()):
        if exchange.operation == "DescribeTasks" and arn in exchange.answer:
            for task in json.loads(exchange.answer)["tasks"]:
                if task["taskArn"] == arn:
                    seen.append((i, task["lastStatus"]))
    return seen


def role(body):
    return {t["key"]: t["value"] for t in body["tags"]}[TAG_ROLE]


def test_workers_launch_with_the_scheduler_and_find_its_address(
    local_fargate, ecs, slow_provisioning
):
    name = "early-workers"
    with (
        FargateCluster(n_workers=2, name=name) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2, timeout=120)
        assert client.submit(lambda x: x + 1, 41).result() == 42
        scheduler = cluster.scheduler.task_arn
        workers = [w.task_arn for w in cluster.workers.values()]
    described = {
        t["taskArn"]: t
        for t in ecs.describe_tasks(cluster=CLUSTER, tasks=[scheduler, *workers])["tasks"]
    }
    # ECS's own timestamps: the worker tasks were created before the scheduler's started.
    for worker in workers:
        assert described[worker]["createdAt"] < described[scheduler]["startedAt"]
    # On the wire: the workers' RunTask went out before any answer about the scheduler,
    # naming its task, not an address (none was known): they found it themselves. A later
    # answer said the scheduler was RUNNING.
    launches = requests(local_fargate, "RunTask", started_by=name)
    assert [role(body) for _, body in launches] == ["scheduler", "worker"]
    workers_launched, worker_launch = launches[1]
    seen = statuses_seen(local_fargate, scheduler)
    assert [i for i, _ in seen if i < workers_launched] == []
    assert "RUNNING" in [status for i, status in seen if i > workers_launched]
    [container] = worker_launch["overrides"]["containerOverrides"]
    assert "tls://{scheduler}:8786" in container["command"]
    assert {"name": "STARBURST_SCHEDULER_TASK", "value": scheduler} in container["environment"]


def test_a_scheduler_stopped_before_it_runs_is_one_error_and_no_worker_is_left(
    local_fargate, ecs, slow_provisioning
):
    name = "early-failure"
    reason = "stopped by the test while it was provisioning"

    def stop_the_scheduler_once_workers_launched():
        def launched():
            arns = ecs.list_tasks(cluster=CLUSTER, startedBy=name)["taskArns"]
            return arns if len(arns) == 3 else None  # the scheduler and two workers

        wait_until(launched, timeout=60)
        tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=launched(), include=["TAGS"])["tasks"]
        [scheduler] = [t for t in tasks if {"key": TAG_ROLE, "value": "scheduler"} in t["tags"]]
        assert scheduler["lastStatus"] == "PROVISIONING"
        ecs.stop_task(cluster=CLUSTER, task=scheduler["taskArn"], reason=reason)

    stopper = threading.Thread(target=stop_the_scheduler_once_workers_launched)
    stopper.start()
    try:
        with pytest.raises(TaskFailedError) as info:
            FargateCluster(n_workers=2, name=name)
    finally:
        stopper.join()
    assert type(info.value) is TaskFailedError  # ours, not SpecCluster's wrapper
    assert "UserInitiated" in str(info.value) and reason in str(info.value)
    # Every task of the cluster, the workers launched early included, is STOPPED.
    arns = ecs.list_tasks(cluster=CLUSTER, startedBy=name, desiredStatus="STOPPED")["taskArns"]
    assert len(arns) == 3
    described = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]
    assert {t["lastStatus"] for t in described} == {"STOPPED"}
    assert ecs.list_tasks(cluster=CLUSTER, startedBy=name)["taskArns"] == []
    # One StopTask per task: the test's for the scheduler, the cluster's for each worker.
    stops = collections.Counter(body["task"] for _, body in requests(local_fargate, "StopTask"))
    assert {arn: stops[arn] for arn in arns} == {arn: 1 for arn in arns}


def test_closing_twenty_workers_stops_each_task_once_and_waits_for_all(local_fargate, ecs):
    name = "close-once"
    cluster = FargateCluster(n_workers=20, worker_cpu=256, worker_memory=512, name=name)
    arns = [cluster.scheduler.task_arn] + [w.task_arn for w in cluster.workers.values()]
    assert len(arns) == 21
    local_fargate.reset_counters()
    first_stop = len(local_fargate.recorded())
    cluster.close()
    # Exactly one StopTask per task, none refused by AWS's rate limits.
    assert local_fargate.calls["StopTask"] == 21
    stops = [body["task"] for i, body in requests(local_fargate, "StopTask") if i >= first_stop]
    assert sorted(stops) == sorted(arns)
    assert local_fargate.throttled_calls == 0
    # close() returned once ECS reported every task STOPPED, with its stop time.
    described = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]
    assert {t["lastStatus"] for t in described} == {"STOPPED"}
    assert all("stoppedAt" in t for t in described)
    pids = [r["pid"] for r in local_fargate.task_records() if r["arn"] in arns and r["pid"]]
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]


def test_polls_slow_down_once_every_task_is_steady(local_fargate):
    steady = 3.0
    with (
        FargateCluster(n_workers=1, poll_interval=steady) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(1, timeout=120)
        local_fargate.reset_counters()
        seen: list[float] = []

        def polls(n):
            while len(seen) < local_fargate.calls["DescribeTasks"]:
                seen.append(time.monotonic())
            return len(seen) >= n

        wait_until(lambda: polls(4), timeout=30, interval=0.05)
        # While the scheduler and the worker run, one poll per steady interval (not per
        # busy one), each one call for both tasks. The first poll may still be the busy
        # one that sees the worker RUNNING (it connects as its process starts).
        gaps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
        assert all(gap > steady - 0.5 for gap in gaps[1:3]), gaps
        assert local_fargate.describe_task_sizes[:4] == [2, 2, 2, 2]
        assert local_fargate.throttled_calls == 0
