"""Workers that stop are replaced; workers that keep failing are not, forever."""

import asyncio
import logging

import boto3
from distributed import Client
from helpers import wait_until

from starburst_dask import FargateCluster
from starburst_dask.cluster.replacement import ReplacementPolicy

FAST = {"poll_interval": 0.5}


def worker_arns(ecs, cluster):
    """The cluster's worker tasks, running or stopped, as ECS lists them."""
    arns = [
        a
        for status in ("RUNNING", "STOPPED")
        for a in ecs.list_tasks(
            cluster="starburst-dask", startedBy=cluster.name, desiredStatus=status
        )["taskArns"]
    ]
    described = (
        ecs.describe_tasks(cluster="starburst-dask", tasks=arns, include=["TAGS"])["tasks"]
        if arns
        else []
    )
    return {
        t["taskArn"]
        for t in described
        if {"key": "starburst-dask:role", "value": "worker"} in t.get("tags", [])
    }


def test_policy_backs_off_and_gives_up():
    policy = ReplacementPolicy(max_failures=3, base_delay=1.0, max_delay=1.5)
    assert policy.delay == 0
    policy.stopped(joined=False, reason="exit code 1")
    assert (policy.delay, policy.exhausted) == (1.0, False)
    policy.stopped(joined=False, reason="exit code 1")
    assert policy.delay == 1.5  # 2.0, capped
    policy.stopped(joined=True, reason="")  # a worker that served resets the count
    assert (policy.failures, policy.delay) == (0, 0)
    for _ in range(3):
        policy.stopped(joined=False, reason="exit code 137")
    assert policy.exhausted and "3 worker tasks in a row" in policy.error()
    assert "exit code 137" in policy.error()


def test_a_worker_that_dies_after_joining_is_replaced(local_fargate):
    ecs = boto3.client("ecs")
    with FargateCluster(n_workers=1, **FAST) as cluster, Client(cluster) as client:
        client.wait_for_workers(1, timeout=120)
        (first,) = (w["name"] for w in client.scheduler_info()["workers"].values())
        arn = next(a for a in worker_arns(ecs, cluster) if a.endswith(first))
        local_fargate.kill_task(arn)
        wait_until(
            lambda: {w["name"] for w in client.scheduler_info()["workers"].values()} - {first},
            timeout=120,
        )
        assert client.submit(sum, [1, 2, 3]).result() == 6
        assert cluster.provisioner.replacement.failures == 0


def test_workers_that_never_join_are_not_relaunched_forever(local_fargate, caplog):
    ecs = boto3.client("ecs")
    caplog.set_level(logging.ERROR, logger="starburst_dask.cluster")
    killed: set[str] = set()

    def kill_new_workers():
        """Kill each worker task as soon as its process exists, before it can join."""
        workers = worker_arns(ecs, cluster)
        for record in local_fargate.task_records():
            if record["pid"] and record["arn"] in workers - killed:
                killed.add(record["arn"])
                local_fargate.kill_task(record["arn"])
        return "no more replacements" in caplog.text

    with FargateCluster(n_workers=1, **FAST) as cluster:
        cluster.provisioner.replacement = ReplacementPolicy(max_failures=3, base_delay=0.2)
        wait_until(kill_new_workers, timeout=120, interval=0.05)
        # One worker and two replacements, each killed: then no further launch.
        assert len(worker_arns(ecs, cluster)) == 3
        assert "exit code 137" in caplog.text
        assert "workers=0/0" in repr(cluster)


def test_a_stoptask_that_fails_is_a_warning(local_fargate, caplog):
    from aiobotocore.session import get_session

    from starburst_dask.ecs import tasks

    missing = "arn:aws:ecs:us-east-1:123456789012:task/starburst-dask/" + "0" * 32

    async def stop():
        async with get_session().create_client("ecs", region_name="us-east-1") as ecs:
            await tasks.stop_tasks(ecs, "starburst-dask", [missing], "test")

    with caplog.at_level(logging.WARNING, logger="starburst_dask.ecs.tasks"):
        asyncio.run(stop())
    assert f"could not stop task {'0' * 32}" in caplog.text
