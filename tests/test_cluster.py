"""FargateCluster end to end on the local Fargate: real AWS clients, real dask processes."""

import json
import time

import boto3
import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import psutil
import pytest
import xarray as xr
from distributed import Client
from helpers import wait_until

from starburst_dask import FargateCluster, MissingResourceError, TaskFailedError
from starburst_dask.errors import ConfigurationError, ConfirmationError

FAST = {"poll_interval": 0.5}


def running_tasks(ecs):
    return ecs.list_tasks(cluster="starburst-dask", desiredStatus="RUNNING")["taskArns"]


def assert_nothing_left(aws, ecs):
    """No RUNNING task at the API, and no task process on this machine."""
    assert running_tasks(ecs) == []
    pids = [r["pid"] for r in aws.task_records() if r["pid"]]
    alive = [
        p
        for p in pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == []


@pytest.fixture
def ecs(local_fargate):
    return boto3.client("ecs")


def test_computes_like_local_dask_and_scales(local_fargate, ecs):
    # The default image (daskdev/dask) has no xarray: its start-up installs it, as a
    # user would ask (on the local Fargate, the xarray installed here stands for it).
    extra = {"EXTRA_PIP_PACKAGES": "xarray"}
    with (
        FargateCluster(n_workers=3, environment=extra, **FAST) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(3, timeout=120)
        workers = client.scheduler_info()["workers"].values()
        # Every worker is a Fargate task: its dask name is its task id, its address the
        # task's ENI address.
        tasks = {
            t["taskArn"].rsplit("/", 1)[1]: t
            for t in ecs.describe_tasks(cluster="starburst-dask", tasks=running_tasks(ecs))["tasks"]
        }
        for w in workers:
            eni = {d["name"]: d["value"] for d in tasks[w["name"]]["attachments"][0]["details"]}
            assert w["host"] == eni["privateIPv4Address"]
        assert cluster.scheduler_address.startswith("tls://127.")
        assert "starburst" in repr(cluster) and cluster.dashboard_link.startswith("https://127.")

        # dask.delayed
        total = dask.delayed(sum)([dask.delayed(pow)(i, 2) for i in range(100)])
        assert client.compute(total).result() == sum(i**2 for i in range(100))

        # dask.dataframe groupby-aggregate
        pdf = pd.DataFrame({"key": np.arange(1000) % 7, "value": np.arange(1000.0)})
        ddf = dd.from_pandas(pdf, npartitions=4)
        got = client.compute(ddf.groupby("key").value.agg(["sum", "mean"])).result()
        pd.testing.assert_frame_equal(
            got.sort_index(), pdf.groupby("key").value.agg(["sum", "mean"])
        )

        # xarray reduction on dask arrays
        data = np.random.default_rng(0).normal(size=(40, 30))
        da = xr.DataArray(data, dims=("time", "x")).chunk({"time": 10})
        got = client.compute(da.mean("time")).result()
        np.testing.assert_allclose(got.values, data.mean(axis=0))

        cluster.scale(1)
        wait_until(lambda: len(client.scheduler_info()["workers"]) == 1)
        cluster.scale(4)
        client.wait_for_workers(4, timeout=120)
        wait_until(lambda: len(running_tasks(ecs)) == 5)  # 4 workers and the scheduler

        # Past starburst.confirm.*, scale and adapt are confirmed as the launch is: with
        # no terminal here, refused, and nothing launched.
        launched = local_fargate.calls["RunTask"]
        with pytest.raises(ConfirmationError, match=r"1,000 workers.*Not scaled"):
            cluster.scale(1000)
        with pytest.raises(ConfirmationError, match="Not scaled"):
            cluster.adapt(maximum=1000)
        assert local_fargate.calls["RunTask"] == launched and len(running_tasks(ecs)) == 5
    assert_nothing_left(local_fargate, ecs)


def test_twenty_workers_take_two_runtask_calls_and_shared_polls(local_fargate, ecs):
    local_fargate.reset_counters()
    start = time.monotonic()
    seen = len(local_fargate.recorded())
    with FargateCluster(n_workers=20, worker_cpu=256, worker_memory=512, **FAST) as cluster:
        elapsed = time.monotonic() - start
        counts = list(local_fargate.run_task_counts)
        describes = [e for e in local_fargate.recorded()[seen:] if e.operation == "DescribeTasks"]
        scheduler = cluster.scheduler.task_arn
        assert len(cluster.workers) == 20
        with Client(cluster) as client:  # and all twenty are dask workers
            client.wait_for_workers(20, timeout=300)
        everything = local_fargate.recorded()[seen:]
    assert counts == [1, 10, 10]  # the scheduler, then the workers in two calls
    # The client's one poller (its own credentials): at most one DescribeTasks call per
    # poll interval (plus the last), each covering every launching task, never one per task.
    mine = local_fargate.env["AWS_ACCESS_KEY_ID"]
    polls = [len(json.loads(e.request)["tasks"]) for e in describes if e.access_key == mine]
    assert len(polls) <= elapsed / FAST["poll_interval"] + 2
    assert max(polls) == 21  # every task of the cluster, the scheduler included
    # The workers' own (their task roles'): each asked for the scheduler's task only, to
    # find its address, under twenty keys.
    theirs = [e for e in everything if e.operation == "DescribeTasks" and e.access_key != mine]
    assert len({e.access_key for e in theirs}) == 20
    assert {tuple(json.loads(e.request)["tasks"]) for e in theirs} == {(scheduler,)}
    assert_nothing_left(local_fargate, ecs)


def test_close_stops_every_task_and_waits(local_fargate, ecs):
    cluster = FargateCluster(n_workers=2, **FAST)
    arns = [w.task_arn for w in cluster.workers.values()] + [cluster.scheduler.task_arn]
    cluster.close()
    described = ecs.describe_tasks(cluster="starburst-dask", tasks=arns)["tasks"]
    assert {t["lastStatus"] for t in described} == {"STOPPED"}
    assert {t["stopCode"] for t in described} == {"UserInitiated"}
    assert_nothing_left(local_fargate, ecs)


def test_async_cluster(local_fargate, ecs):
    async def main():
        async with (
            FargateCluster(n_workers=1, asynchronous=True, **FAST) as cluster,
            Client(cluster, asynchronous=True) as client,
        ):
            await client.wait_for_workers(1)
            assert await client.submit(lambda x: x + 1, 41) == 42
            await cluster.scale(2)
            await client.wait_for_workers(2)

    import asyncio

    asyncio.run(main())
    assert_nothing_left(local_fargate, ecs)


def aws_resources(ecs):
    """What a failed start must not change: task definitions and tasks of any status."""
    return {
        "definitions": ecs.list_task_definitions()["taskDefinitionArns"],
        "tasks": sorted(
            running_tasks(ecs)
            + ecs.list_tasks(cluster="starburst-dask", desiredStatus="STOPPED")["taskArns"]
        ),
    }


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (
            {"worker_cpu": 1024, "worker_memory": 512},
            ConfigurationError,
            ["2048 to 8192 in steps of 1024"],
        ),
        ({"n_workers": -2}, ConfigurationError, ["n_workers must be 0 or more"]),
        ({"n_workers": 1.5}, ConfigurationError, ["whole number"]),
        ({"region": "atlantis-1"}, ConfigurationError, ["unknown AWS region"]),
        (
            {"cluster": "no-such-cluster"},
            MissingResourceError,
            ["ECS cluster 'no-such-cluster' does not exist", "starburst-dask setup"],
        ),
        (
            {"log_group": "/no/such/group"},
            MissingResourceError,
            ["log group '/no/such/group' does not exist", "starburst-dask setup"],
        ),
        (
            {"execution_role": "no-such-role"},
            MissingResourceError,
            ["IAM role 'no-such-role' (execution_role) does not exist", "starburst-dask setup"],
        ),
        (
            {"task_role": "no-such-role"},
            MissingResourceError,
            ["IAM role 'no-such-role' (task_role) does not exist"],
        ),
        (
            {"assign_public_ip": "yes"},
            ConfigurationError,
            ["assign_public_ip must be True, False or 'auto'"],
        ),
        # A stale setup file: named, with the command that rewrites it.
        (
            {"subnets": ["subnet-0123456789abcdef0"]},
            MissingResourceError,
            ["subnet-0123456789abcdef0", "starburst-setup.yaml", "starburst-dask setup"],
        ),
        (
            {"security_groups": ["sg-0123456789abcdef0"]},
            MissingResourceError,
            ["sg-0123456789abcdef0", "starburst-setup.yaml", "starburst-dask setup"],
        ),
    ],
)
def test_bad_input_changes_nothing(local_fargate, ecs, kwargs, error, words):
    before = aws_resources(ecs)
    local_fargate.reset_counters()
    with pytest.raises(error) as info:
        FargateCluster(**{"n_workers": 1, **kwargs})
    for word in words:
        assert word in str(info.value)
    assert local_fargate.calls["RunTask"] == 0
    assert local_fargate.calls["RegisterTaskDefinition"] == 0
    if error is ConfigurationError:  # found before any AWS call at all
        assert sum(local_fargate.calls.values()) == 0
    assert aws_resources(ecs) == before


def test_no_credentials_is_a_clear_error(local_fargate, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    local_fargate.reset_counters()
    with pytest.raises(ConfigurationError, match="no AWS credentials found"):
        FargateCluster(n_workers=1, region="us-east-1")
    assert sum(local_fargate.calls.values()) == 0


def test_task_that_cannot_start_reports_why(local_fargate, ecs):
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/missing:latest"
    with pytest.raises(Exception) as info:
        FargateCluster(n_workers=1, image=image, **FAST)
    message = str(info.value)
    assert "TaskFailedToStart" in message and "CannotPullContainerError" in message
    assert isinstance(info.value.__cause__ or info.value, TaskFailedError)
    assert_nothing_left(local_fargate, ecs)


def test_cluster_left_open_is_closed_at_interpreter_exit(local_fargate, ecs):
    import os
    import subprocess
    import sys

    script = (
        "from starburst_dask import FargateCluster\n"
        "cluster = FargateCluster(n_workers=1, poll_interval=0.5)\n"
        "print('SCHEDULER', cluster.scheduler.task_arn, flush=True)\n"  # exit, no close()
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **local_fargate.env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    [scheduler] = [
        line.split()[1] for line in done.stdout.splitlines() if line.startswith("SCHEDULER ")
    ]
    assert "Closed " in done.stderr  # closed by the exit hook, its cost line logged
    assert (
        ecs.describe_tasks(cluster="starburst-dask", tasks=[scheduler])["tasks"][0]["lastStatus"]
        == "STOPPED"
    )
    assert_nothing_left(local_fargate, ecs)


def test_workers_are_spread_over_the_subnets_and_zones(local_fargate, ecs):
    # One RunTask lists every subnet; Fargate spreads the tasks over them.
    with FargateCluster(n_workers=4, **FAST) as cluster:
        arns = [w.task_arn for w in cluster.workers.values()]
        described = ecs.describe_tasks(cluster="starburst-dask", tasks=arns)["tasks"]
        zones = {t["availabilityZone"] for t in described}
        subnets = {
            d["value"]
            for t in described
            for d in t["attachments"][0]["details"]
            if d["name"] == "subnetId"
        }
    assert local_fargate.run_task_counts[-1] == 4  # one call for the four
    assert len(subnets) == 4 and len(zones) > 1
