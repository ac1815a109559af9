"""A scheduler task that stops by itself fails its cluster plainly: the cluster's status,
the reason in ECS's words on the user's futures, every worker task stopped, a prompt close."""

import time
from concurrent.futures import CancelledError

import boto3
import dask
import pytest
from distributed import Client
from distributed.core import Status
from helpers import stopped, wait_until

from starburst_dask import FargateCluster
from starburst_dask.errors import SchedulerLostError

FAST = {"poll_interval": 0.5}
# Long enough that the client still retries connecting when the test ends: a client that
# gave up closes itself and leaves its loop thread running (see test_cost's max_cost test).
RECONNECT = {"distributed.comm.timeouts.connect": "120s"}


def test_killing_the_scheduler_fails_the_cluster_and_says_why(local_fargate):
    ecs = boto3.client("ecs")
    with (
        dask.config.set(RECONNECT),
        FargateCluster(n_workers=2, **FAST) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2, timeout=120)
        scheduler = cluster.scheduler.task_arn
        workers = [w.task_arn for w in cluster.workers.values()]
        slow = client.submit(time.sleep, 600)
        wait_until(lambda: any(client.processing().values()))

        local_fargate.kill_task(scheduler)
        # The running task fails, no hang. Its client cancels it the moment the connection
        # breaks (distributed's own behaviour), before ECS can say why; only work the client
        # holds once ECS has answered can carry the reason.
        with pytest.raises((CancelledError, SchedulerLostError)):
            slow.result(timeout=10)
        # The next submit fails with the scheduler task and ECS's reason for its stop.
        with pytest.raises(SchedulerLostError) as info:
            client.submit(sum, [1, 2]).result(timeout=10)
        described = stopped(ecs, scheduler)
        task_id = scheduler.rsplit("/", 1)[1]
        error = info.value
        assert error.task_id == task_id and task_id in str(error)
        assert described["stoppedReason"] in str(error)
        assert described["stopCode"] in str(error) and "exit code 137" in str(error)
        # The cluster says it failed, and why.
        assert cluster.status == Status.failed and "status=failed" in repr(cluster)
        assert isinstance(cluster.failure, SchedulerLostError)
        assert str(cluster.failure) == str(error)
        # Every worker task stopped by the cluster, not at its death timeout.
        for arn in workers:
            task = stopped(ecs, arn, timeout=30)
            assert task["stoppedReason"] == "its scheduler task stopped"
        # New work keeps failing with the reason, not a hang.
        with pytest.raises(SchedulerLostError, match=task_id):
            client.submit(sum, [3, 4]).result(timeout=10)
        cluster.close(timeout=30)
    assert cluster.status == Status.closed and client.status == "closed"
    assert ecs.list_tasks(cluster="starburst-dask", startedBy=cluster.name)["taskArns"] == []
