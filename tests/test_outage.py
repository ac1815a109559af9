"""An AWS endpoint that stops answering for a while: the cluster heals once it returns.

The local Fargate's outage refuses connections, as a client meets AWS unavailable, while
the tasks keep running. botocore retries a refused call for up to 15 s itself (legacy
mode: five attempts, exponential back-off), so outages here last longer than that: the
cluster's own retrying is what is tested.
"""

import logging

import boto3
import dask.array as da
from distributed import Client
from helpers import stopped, wait_until

from starburst_dask import FargateCluster
from starburst_dask.ecs.tasks import task_id

FAST = {"poll_interval": 0.5}
OUTAGE = 20.0  # seconds: longer than botocore's own retries of one call
WATCHER = "starburst_dask.ecs.watcher"


def task_arns(ecs, cluster, status="RUNNING"):
    """The cluster's tasks of ``status``, as ECS lists them."""
    return ecs.list_tasks(cluster="starburst-dask", startedBy=cluster.name, desiredStatus=status)[
        "taskArns"
    ]


def worker_names(client):
    return {w["name"] for w in client.scheduler_info()["workers"].values()}


def test_a_worker_lost_during_an_outage_is_replaced_once_aws_answers(local_fargate, caplog):
    caplog.set_level(logging.INFO, logger=WATCHER)
    ecs = boto3.client("ecs")
    # The scheduler removes the dead worker at once; the cluster replaces it once AWS
    # answers again (the launch is retried through the outage).
    with FargateCluster(n_workers=2, **FAST) as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)
        before = worker_names(client)
        victim = next(a for a in task_arns(ecs, cluster) if task_id(a) in before)

        local_fargate.outage(OUTAGE)
        local_fargate.kill_task(victim)  # ECS sees it stop; the cluster cannot, yet
        assert local_fargate.wait_reachable(OUTAGE + 10)

        assert stopped(ecs, victim)["stopCode"] == "EssentialContainerExited"
        wait_until(
            lambda: len(worker_names(client)) == 2 and task_id(victim) not in worker_names(client),
            timeout=120,
        )
        x = da.ones((1000, 1000), chunks=(100, 100))
        assert client.compute(x.sum()).result() == 1_000_000

    said = [r.getMessage() for r in caplog.records if r.name == WATCHER]
    began = [m for m in said if "did not answer" in m]
    ended = [m for m in said if "answers again" in m]
    assert len(began) == 1 and "EndpointConnectionError" in began[0], said
    assert len(ended) == 1, said


def test_close_during_an_outage_says_what_it_could_not_stop(local_fargate, caplog):
    caplog.set_level(logging.WARNING, logger="starburst_dask")
    ecs = boto3.client("ecs")
    cluster = FargateCluster(n_workers=1, **FAST)
    left = task_arns(ecs, cluster)
    assert len(left) == 2  # the scheduler and the worker
    try:
        with local_fargate.unreachable():
            cluster.close()  # returns, raises nothing
        said = [r.getMessage() for r in caplog.records if "could not stop" in r.getMessage()]
        assert said and all("the AWS endpoint did not answer" in m for m in said)
        for arn in left:  # each named (they may still have exited, told to by dask)
            assert any(task_id(arn) in m for m in said), said
    finally:  # what the outage kept running, stopped now that AWS answers
        for arn in task_arns(ecs, cluster):
            ecs.stop_task(cluster="starburst-dask", task=arn, reason="test cleanup")
        for arn in left:
            stopped(ecs, arn)
