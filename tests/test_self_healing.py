"""Workers come back: after a crash, a hang, a Spot interruption and an API outage, with
AWS-like DEPROVISIONING delays (a stopped task's ENI takes tens of seconds to detach).

A worker is gone at the first sign (the scheduler removes it, or ECS reports its task
stopping), leaves the spec and is replaced, while its old task still holds its vCPUs
until STOPPED. A Spot interruption's SIGTERM retires the worker: its keys move.
"""

import contextlib
import time

import boto3
from distributed import Client
from helpers import wait_until

from starburst_dask import FargateCluster, fargate
from starburst_dask.cluster.departures import REJOIN_GRACE
from starburst_dask.ecs.tasks import task_id

FAST = {"poll_interval": 0.5}
#: DEPROVISIONING as AWS takes it ("Amazon ECS task lifecycle": tens of seconds).
AWS_LIKE = (30.0, 60.0)


@contextlib.contextmanager
def aws_like(local_fargate):
    """AWS-like DEPROVISIONING delays for the tasks that stop meanwhile (the cluster's
    close, after, is not made to wait for them: that wait is not what is tested)."""
    saved = local_fargate.deprovisioning
    local_fargate.deprovisioning = AWS_LIKE
    try:
        yield local_fargate
    finally:
        local_fargate.deprovisioning = saved


def squares(client, numbers, seconds=0.0):
    """Futures of ``x * x`` for each number, each task taking ``seconds`` (functions sent
    by value: the tasks' image does not have this module)."""
    return client.map(lambda x: (time.sleep(seconds), x * x)[1], numbers)


def described(ecs, arns):
    tasks = ecs.describe_tasks(cluster="starburst-dask", tasks=arns)["tasks"]
    return {t["taskArn"]: t for t in tasks}


def worker_tasks(ecs, cluster):
    """The cluster's worker tasks ECS runs (desiredStatus RUNNING), by dask name."""
    arns = ecs.list_tasks(cluster="starburst-dask", startedBy=cluster.name)["taskArns"]
    tasks = ecs.describe_tasks(cluster="starburst-dask", tasks=arns, include=["TAGS"])["tasks"]
    return {
        task_id(t["taskArn"]): t["taskArn"]
        for t in tasks
        if {"key": "starburst-dask:role", "value": "worker"} in t.get("tags", [])
    }


def connected(client):
    """Connected workers: name -> address."""
    return {str(w["name"]): a for a, w in client.scheduler_info()["workers"].items()}


def replaced(client, gone, n):
    """Whether ``n`` workers are connected, none of them ``gone`` (one look)."""
    now = connected(client)
    return len(now) == n and gone not in now


def cluster_log(cluster):
    """The cluster's log, line by line (``cluster.get_logs()``)."""
    return cluster.get_logs(cluster=True, scheduler=False, workers=False)["Cluster"].splitlines()


def held_only_by(client, futures, address):
    """Keys of ``futures`` whose only copy is on the worker at ``address``."""
    who_has = client.who_has(futures)
    return [key for key, holders in who_has.items() if list(holders) == [address]]


def recomputed_since(client, keys, since):
    """Keys that went back to processing after ``since`` (scheduler's transition log)."""
    story = client.sync(client.scheduler.get_story, keys_or_stimuli=list(keys))
    return {key for key, _, finish, _, _, at in story if finish == "processing" and at > since}


def retire_by_spot_interruption(local_fargate, client, arn, address, futures):
    """Interrupt the Spot task ``arn``; once its worker has left, its keys (held only there
    before) are on other workers, without having been computed again."""
    keys = held_only_by(client, futures, address)
    assert keys, "the interrupted worker held no key of its own"
    interrupted = time.time()
    local_fargate.interrupt_spot(arn)
    wait_until(lambda: task_id(arn) not in connected(client), timeout=60)
    moved = client.who_has(keys)
    assert all(holders and address not in holders for holders in moved.values()), moved
    assert not recomputed_since(client, keys, interrupted)


def test_crash_hang_spot_interruption_and_outage_together(local_fargate):
    ecs = boto3.client("ecs")
    options = {"spot": True, "worker_ttl": 15, **FAST}
    with (
        FargateCluster(n_workers=4, **options) as cluster,
        Client(cluster) as client,
        aws_like(local_fargate),
    ):
        client.wait_for_workers(4, timeout=120)
        names = connected(client)
        arns = worker_tasks(ecs, cluster)
        assert set(names) == set(arns)
        spot, killed, hung, _ = sorted(names)
        early = squares(client, range(40))
        client.gather(early)
        late = squares(client, range(40, 200), 0.5)

        retire_by_spot_interruption(local_fargate, client, arns[spot], names[spot], early)
        local_fargate.kill_task(arns[killed])
        local_fargate.freeze_task(arns[hung])
        local_fargate.outage(30)
        last_fault = time.monotonic()

        total = client.submit(sum, early + late)
        assert total.result(timeout=300) == sum(i * i for i in range(200))

        def recovered():
            now = connected(client)
            return len(now) == 4 and not now.keys() & {spot, killed, hung}

        wait_until(recovered, timeout=max(1.0, last_fault + 90 - time.monotonic()))
        said = "\n".join(cluster_log(cluster))
        assert f"Worker {spot}" in said and fargate.SPOT_INTERRUPTION_REASON in said, said
        assert f"Worker {killed}" in said and "EssentialContainerExited" in said, said
        assert "exit code 137" in said, said
        assert f"Worker {hung} left: the scheduler removed it: no heartbeat" in said, said
        stops = described(ecs, [arns[n] for n in (spot, killed, hung)])
        assert [stops[arns[n]]["stopCode"] for n in (spot, killed, hung)] == [
            fargate.SPOT_INTERRUPTION_CODE,
            "EssentialContainerExited",
            "UserInitiated",  # the cluster stopped the hung worker's task
        ]
        # Frozen, the hung task ends only at SIGKILL, its stopTimeout (120 s) after the
        # cluster's StopTask: kill it now rather than wait for that.
        local_fargate.kill_task(arns[hung])


def test_a_killed_worker_is_replaced_while_its_task_is_still_deprovisioning(local_fargate):
    ecs = boto3.client("ecs")
    with (
        FargateCluster(n_workers=1, **FAST) as cluster,
        Client(cluster) as client,
        aws_like(local_fargate),
    ):
        client.wait_for_workers(1, timeout=120)
        (first,) = connected(client)
        arn = worker_tasks(ecs, cluster)[first]
        local_fargate.kill_task(arn)
        wait_until(lambda: connected(client).keys() - {first}, timeout=120)
        task = described(ecs, [arn])[arn]
        assert task["lastStatus"] == "DEPROVISIONING", task["lastStatus"]
        assert "stoppedAt" not in task and task["executionStoppedAt"]
        assert client.submit(sum, [1, 2]).result() == 3


def test_scale_after_a_loss_counts_only_live_workers(local_fargate):
    ecs = boto3.client("ecs")
    with (
        FargateCluster(n_workers=2, **FAST) as cluster,
        Client(cluster) as client,
        aws_like(local_fargate),
    ):
        client.wait_for_workers(2, timeout=120)
        victim = sorted(connected(client))[0]
        local_fargate.kill_task(worker_tasks(ecs, cluster)[victim])
        wait_until(lambda: any(f"Worker {victim} left" in line for line in cluster_log(cluster)))
        cluster.scale(3)
        wait_until(lambda: replaced(client, victim, 3), timeout=120)
        assert len(worker_tasks(ecs, cluster)) == 3  # the lost one is not counted


def test_a_spot_interruptions_keys_move_and_it_exits_before_sigkill(local_fargate):
    ecs = boto3.client("ecs")
    with FargateCluster(n_workers=2, spot=True, **FAST) as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)
        names = connected(client)
        futures = squares(client, range(20))
        client.gather(futures)
        name = next(n for n, a in names.items() if held_only_by(client, futures, a))
        arn = worker_tasks(ecs, cluster)[name]
        retire_by_spot_interruption(local_fargate, client, arn, names[name], futures)
        task = described(ecs, [arn])[arn]
        assert task["stopCode"] == fargate.SPOT_INTERRUPTION_CODE
        assert task["stoppedReason"] == fargate.SPOT_INTERRUPTION_REASON
        wait_until(lambda: "exitCode" in described(ecs, [arn])[arn]["containers"][0])
        task = described(ecs, [arn])[arn]
        assert task["containers"][0]["exitCode"] == 0  # retired, not killed at stopTimeout
        assert client.gather(futures) == [i * i for i in range(20)]
        wait_until(lambda: replaced(client, name, 2), timeout=120)
        assert any(fargate.SPOT_INTERRUPTION_REASON in line for line in cluster_log(cluster))


def test_an_interrupted_spot_worker_falls_back_to_on_demand_and_says_what_it_costs(
    local_fargate,
):
    ecs = boto3.client("ecs")
    with (
        FargateCluster(n_workers=2, spot="fallback", **FAST) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2, timeout=120)
        assert cluster.quota.providers == {"FARGATE_SPOT": 2}
        victim = sorted(connected(client))[0]
        local_fargate.fail_next_run_task(1, "capacity")  # Spot has no capacity now
        local_fargate.interrupt_spot(worker_tasks(ecs, cluster)[victim])
        wait_until(lambda: replaced(client, victim, 2), timeout=120)
        assert cluster.quota.providers == {"FARGATE_SPOT": 1, "FARGATE": 1}
        said = [line for line in cluster_log(cluster) if "now run On-Demand" in line]
        assert len(said) == 1 and "1 of 2 workers now run On-Demand, at $" in said[0]
        assert "/hour more than on Spot" in said[0]
        assert "1 on Spot, 1 On-Demand" in str(cluster.quota)
        assert "1 on Spot, 1 On-Demand" in cluster._repr_html_()


def test_workers_restarted_by_their_nannies_are_not_lost(local_fargate):
    ecs = boto3.client("ecs")
    with FargateCluster(n_workers=2, **FAST) as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)
        names, tasks = set(connected(client)), worker_tasks(ecs, cluster)
        client.restart()  # each nanny restarts its worker: removed, back under its name
        restarted = time.monotonic()
        wait_until(lambda: set(connected(client)) == names, timeout=60)
        # Nothing may happen once the grace for coming back is over: wait it out.
        wait_until(lambda: time.monotonic() > restarted + REJOIN_GRACE + 2, timeout=60)
        assert not [line for line in cluster_log(cluster) if " left: " in line]
        assert worker_tasks(ecs, cluster) == tasks  # the same tasks, none stopped or added


def test_a_removal_of_a_worker_the_cluster_never_saw_changes_nothing(local_fargate):
    """With 64 workers registering at once, the scheduler reported removing a worker the
    cluster had not been told of; the cluster's watch of its workers ended there and its
    close raised KeyError."""

    def remove_unknown(dask_scheduler):
        for plugin in dask_scheduler.plugins.values():
            if type(plugin).__name__ == "WorkerStatusPlugin":  # the cluster's subscription
                plugin.remove_worker(scheduler=dask_scheduler, worker="tls://127.0.0.9:1")

    with FargateCluster(n_workers=1, **FAST) as cluster, Client(cluster) as client:
        client.wait_for_workers(1, timeout=120)
        client.run_on_scheduler(remove_unknown)
        cluster.scale(2)  # a worker that joins later still reaches the cluster's view
        wait_until(lambda: len(cluster.scheduler_info["workers"]) == 2, timeout=120)
        assert client.submit(sum, [1, 2]).result() == 3
    assert cluster.status.name == "closed"
