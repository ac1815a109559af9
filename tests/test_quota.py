"""The vCPU quota governor on the local Fargate: waves, other users, faults, adaptivity."""

import json
import threading
import time

import boto3
import pytest
from botocore.exceptions import ClientError
from distributed import Client
from helpers import PYTHON_IMAGE, wait_until

from starburst_dask import FargateCluster, fargate
from starburst_dask.ecs.boot import find_scheduler_policy
from starburst_dask.errors import QuotaExceededError
from starburst_dask.local import LocalFargate

FAST = {"poll_interval": 0.5, "quota_interval": 1}
BIG_WORKERS = {
    "worker_cpu": 2048,
    "worker_memory": 4096,
    "scheduler_cpu": 1024,
    "scheduler_memory": 2048,
}


@pytest.fixture
def aws():
    """A fresh local Fargate with a 9 vCPU quota: no usage left by an earlier test in the
    per-minute usage metric."""
    with LocalFargate(vcpu_quota=9) as aws:
        yield aws


class Peak:
    """Samples the emulator's own task records: the most vCPU, and 2-vCPU tasks, running."""

    def __init__(self, aws):
        self.aws, self.vcpus, self.workers = aws, 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.wait(0.05):
            live = [r for r in self.aws.task_records() if r["lastStatus"] != "STOPPED"]
            self.vcpus = max(self.vcpus, sum(int(r["cpu"]) for r in live) / 1024)
            running = [r for r in live if r["lastStatus"] == "RUNNING" and r["cpu"] == "2048"]
            self.workers = max(self.workers, len(running))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def running_tasks(ecs):
    return ecs.list_tasks(cluster="starburst-dask", desiredStatus="RUNNING")["taskArns"]


def test_waves_under_the_quota_then_all_run_when_it_is_raised(aws):
    with (
        Peak(aws) as peak,
        FargateCluster(n_workers=8, **BIG_WORKERS, **FAST) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(4, timeout=120)
        # 1 vCPU scheduler + 4 x 2 vCPU workers fill the 9 vCPU quota; 4 wait.
        assert (cluster.quota.running, cluster.quota.waiting) == (4, 4)
        assert cluster.quota.quota == 9
        plan = [m for _, m in cluster._cluster_manager_logs if "waiting for quota" in m]
        assert plan and "Requested 8 workers (16 vCPU)" in plan[0]
        assert "launching 4, 4 waiting for quota" in plan[0]

        futures = client.map(lambda x: (time.sleep(0.05), x * x)[1], range(200))
        assert peak.workers == 4  # never more than fit
        aws.set_quota(17)  # as an approved increase would
        client.wait_for_workers(8, timeout=120)
        assert client.gather(futures) == [x * x for x in range(200)]
        assert cluster.quota.waiting == 0
    assert peak.workers == 8
    assert aws.quota_refusals == 0  # the governor never asked for more than fitted


def test_others_usage_shrinks_headroom(aws):
    ecs = boto3.client("ecs")
    subnet = boto3.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    family = "other-user"
    ecs.register_task_definition(
        family=family,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="2048",
        memory="4096",
        containerDefinitions=[
            {
                "name": "app",
                "image": PYTHON_IMAGE,
                "command": ["python", "-c", "import time; time.sleep(600)"],
            }
        ],
    )
    others = ecs.run_task(
        cluster="starburst-dask",
        taskDefinition=family,
        count=2,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}},
    )["tasks"]
    cloudwatch = boto3.client("cloudwatch")

    def usage():
        end = time.time()
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/Usage",
            MetricName="ResourceCount",
            Dimensions=fargate.usage_dimensions("FARGATE"),
            StartTime=end - 180,
            EndTime=end,
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        # One datapoint a minute, once the minute is over: none for the minute under way.
        assert all(p["Timestamp"].timestamp() + 60 <= end for p in points)
        return max((p["Maximum"] for p in points), default=0)

    try:
        # The other user's 4 vCPU show in AWS/Usage after the minute they ran in.
        wait_until(lambda: usage() >= 4, timeout=150)
        with FargateCluster(n_workers=8, **BIG_WORKERS, **FAST) as cluster:
            # 9 - 4 (others) - 1 (scheduler) leaves room for two 2-vCPU workers.
            assert (cluster.quota.running, cluster.quota.waiting) == (2, 6)
    finally:
        for task in others:
            ecs.stop_task(cluster="starburst-dask", task=task["taskArn"])
    assert aws.quota_refusals == 0


def test_throttling_and_capacity_failures_are_retried(aws):
    aws.set_quota(100)
    aws.fail_next_run_task(3, "throttle")
    aws.fail_next_run_task(2, "capacity")
    with FargateCluster(n_workers=4, **FAST) as cluster, Client(cluster) as client:
        client.wait_for_workers(4, timeout=120)
        assert client.submit(sum, [1, 2, 3]).result() == 6
    assert aws.calls["RunTask"] >= 1 + 1 + 5  # scheduler, workers, and the failed calls
    assert running_tasks(boto3.client("ecs")) == []


def test_a_quota_of_zero_is_a_clear_error_within_the_deadline(aws):
    aws.set_quota(0)
    start = time.monotonic()
    with pytest.raises(QuotaExceededError) as info:
        FargateCluster(n_workers=2, launch_deadline=3, **FAST)
    assert time.monotonic() - start < 3 + 10
    message = str(info.value)
    assert "Fargate On-Demand vCPU resource count" in message and "L-3032A538" in message
    assert "starburst-dask quota --request" in message
    assert aws.calls["RunTask"] == 0  # the governor knew: nothing was even tried
    assert running_tasks(boto3.client("ecs")) == []


def test_adapt_stays_under_the_quota_and_scales_to_zero(aws):
    with (
        Peak(aws) as peak,
        # Up to 50 two-vCPU workers passes starburst.confirm.vcpus: not asked (no terminal
        # here), as the quota, not the threshold, is what this test shows keeping it small.
        FargateCluster(n_workers=0, confirm=False, **BIG_WORKERS, **FAST) as cluster,
        Client(cluster) as client,
    ):
        cluster.adapt(minimum=0, maximum=50, interval="500ms", wait_count=2)
        futures = client.map(lambda x: (time.sleep(0.5), x + 1)[1], range(60))
        assert client.gather(futures) == list(range(1, 61))
        assert cluster.quota.running >= 1
        del futures  # results held on workers would keep them
        wait_until(
            lambda: not client.scheduler_info()["workers"] and not cluster.worker_spec, timeout=120
        )
        wait_until(lambda: len(running_tasks(boto3.client("ecs"))) == 1)  # the scheduler
    assert peak.vcpus <= 9
    assert aws.quota_refusals == 0


def test_quota_command_shows_and_requests(aws):
    from click.testing import CliRunner

    from starburst_dask.cli import main

    aws.account.approval_delay = 5  # long enough to try a second request meanwhile
    shown = CliRunner().invoke(main, ["quota", "--request", "20"])
    assert shown.exit_code == 0, shown.output
    assert "Fargate On-Demand vCPU resource count (L-3032A538): quota 9 vCPU" in shown.output
    assert "Requested 20 vCPU: PENDING" in shown.output
    # One open request per quota, as AWS allows: a second is refused and names the first.
    again = CliRunner().invoke(main, ["quota", "--request", "30"])
    assert again.exit_code == 1 and "to 20 vCPU is open already" in again.output
    wait_until(lambda: "quota 20 vCPU" in CliRunner().invoke(main, ["quota"]).output)
    assert CliRunner().invoke(main, ["quota", "--request", "-1"]).exit_code == 2
    # A request at or below the quota would lower or keep it: refused, nothing filed.
    quotas = boto3.client("service-quotas")
    before = quotas.list_requested_service_quota_change_history_by_quota(
        ServiceCode="fargate", QuotaCode="L-3032A538"
    )["RequestedQuotas"]
    lower = CliRunner().invoke(main, ["quota", "--request", "1"])
    assert lower.exit_code == 1 and "quota is 20 vCPU already" in lower.output
    assert "Traceback" not in lower.output
    assert (
        quotas.list_requested_service_quota_change_history_by_quota(
            ServiceCode="fargate", QuotaCode="L-3032A538"
        )["RequestedQuotas"]
        == before
    )


def test_auto_request_raises_the_quota_and_all_workers_run(aws):
    # Approved after the cluster is up (its first worker connected): it shows the wait.
    aws.account.approval_delay = 10
    with (
        FargateCluster(n_workers=8, quota_auto_request=True, **BIG_WORKERS, **FAST) as cluster,
        Client(cluster) as client,
    ):
        assert cluster.quota.waiting == 4
        client.wait_for_workers(8, timeout=120)
    assert aws.account.quotas["FARGATE"] == 17  # 9 in use + 4 workers x 2 vCPU waiting


def test_request_quota_increase_files_what_the_waiting_workers_need(aws):
    aws.account.approval_delay = 1
    with FargateCluster(n_workers=8, **BIG_WORKERS, **FAST) as cluster, Client(cluster) as client:
        assert cluster.quota.waiting == 4
        request = cluster.request_quota_increase()
        assert (request["DesiredValue"], request["Status"]) == (17, "PENDING")
        client.wait_for_workers(8, timeout=120)  # launched once AWS approves it
    filed = boto3.client("service-quotas").list_requested_service_quota_change_history_by_quota(
        ServiceCode="fargate", QuotaCode="L-3032A538"
    )["RequestedQuotas"]
    assert [r["DesiredValue"] for r in filed] == [17]


def providers(ecs, cluster):
    """Capacity provider of each worker task of ``cluster``, and of its scheduler."""
    arns = [w.task_arn for w in cluster.workers.values()] + [cluster.scheduler.task_arn]
    described = {
        t["taskArn"]: t.get("capacityProviderName", "FARGATE")
        for t in ecs.describe_tasks(cluster="starburst-dask", tasks=arns)["tasks"]
    }
    return sorted(described[a] for a in arns[:-1]), described[arns[-1]]


def test_spot_workers_and_on_demand_scheduler(aws):
    ecs = boto3.client("ecs")
    aws.set_quota(4, "FARGATE_SPOT")
    with FargateCluster(n_workers=6, spot=True, **FAST) as cluster:
        # Each quota governed on its own: 4 Spot vCPU for 1-vCPU workers, 2 wait.
        assert (cluster.quota.capacity_provider, cluster.quota.running, cluster.quota.waiting) == (
            "FARGATE_SPOT",
            4,
            2,
        )
        assert providers(ecs, cluster) == (["FARGATE_SPOT"] * 4, "FARGATE")


def test_spot_fallback_to_on_demand_without_spot_quota_or_capacity(aws):
    ecs = boto3.client("ecs")
    aws.set_quota(0, "FARGATE_SPOT")
    with FargateCluster(n_workers=2, spot="fallback", **FAST) as cluster:
        assert providers(ecs, cluster) == (["FARGATE"] * 2, "FARGATE")
    aws.set_quota(9, "FARGATE_SPOT")
    with FargateCluster(n_workers=0, spot="fallback", **FAST) as cluster, Client(cluster) as client:
        aws.fail_next_run_task(1, "capacity")  # Spot has no capacity for the next call
        cluster.scale(2)
        client.wait_for_workers(2, timeout=120)
        assert providers(ecs, cluster) == (["FARGATE"] * 2, "FARGATE")


def test_the_local_fargate_throttles_bursts_like_aws(aws):
    from concurrent.futures import ThreadPoolExecutor

    from botocore.config import Config
    from botocore.exceptions import ClientError

    ecs = aws.client("ecs", config=Config(retries={"mode": "standard", "total_max_attempts": 1}))

    def list_tasks(_):
        try:
            ecs.list_tasks(cluster="starburst-dask")
        except ClientError as e:
            return (
                e.response["Error"]["Code"],
                e.response["Error"]["Message"],
                e.response["ResponseMetadata"]["HTTPStatusCode"],
            )

    with ThreadPoolExecutor(8) as pool:  # ListTasks: a burst of 100, then 20 a second
        throttled = [r for r in pool.map(list_tasks, range(300)) if r]
    assert throttled and set(throttled) == {("ThrottlingException", "Rate exceeded", 400)}
    assert aws.throttled_calls == len(throttled)


def test_spot_fallback_when_the_ecs_cluster_has_no_spot_provider(aws):
    ecs, iam = boto3.client("ecs"), boto3.client("iam")
    created = ecs.create_cluster(clusterName="on-demand-only", capacityProviders=["FARGATE"])
    # Its workers find their scheduler with the task role, as in setup's cluster.
    policy = find_scheduler_policy(created["cluster"]["clusterArn"])
    role = {"RoleName": "starburst-dask-task", "PolicyName": "on-demand-only"}
    iam.put_role_policy(**role, PolicyDocument=json.dumps(policy))
    try:
        with FargateCluster(
            n_workers=2, spot="fallback", cluster="on-demand-only", **FAST
        ) as cluster:
            arns = [w.task_arn for w in cluster.workers.values()]
            described = ecs.describe_tasks(cluster="on-demand-only", tasks=arns)["tasks"]
            providers = [t.get("capacityProviderName", "FARGATE") for t in described]
            assert providers == ["FARGATE"] * 2
            assert cluster.quota.capacity_provider == "FARGATE"
    finally:
        iam.delete_role_policy(**role)


def test_an_account_without_an_applied_quota_value_uses_the_default(aws):
    from click.testing import CliRunner

    from starburst_dask.cli import main

    aws.set_quota(fargate.QUOTA_DEFAULT)
    aws.account.applied["FARGATE"] = False  # never changed: only the default is known
    try:
        with pytest.raises(ClientError, match="NoSuchResourceException"):
            boto3.client("service-quotas").get_service_quota(
                ServiceCode="fargate", QuotaCode=fargate.QUOTA_CODES["FARGATE"]
            )
        shown = CliRunner().invoke(main, ["quota", "--json"])
        assert shown.exit_code == 0, shown.output
        on_demand = json.loads(shown.stdout)["quotas"][0]
        assert (on_demand["code"], on_demand["quota"]) == ("L-3032A538", fargate.QUOTA_DEFAULT)
    finally:
        aws.account.applied["FARGATE"] = True
        aws.set_quota(9)


def tasks_of(ecs, name):
    """Every task of the dask cluster ``name``, as DescribeTasks reports it now."""
    arns = [
        arn
        for status in ("RUNNING", "STOPPED")
        for arn in ecs.list_tasks(cluster="starburst-dask", startedBy=name, desiredStatus=status)[
            "taskArns"
        ]
    ]
    if not arns:
        return []
    return ecs.describe_tasks(cluster="starburst-dask", tasks=arns, include=["TAGS"])["tasks"]


def role(task):
    return {t["key"]: t["value"] for t in task["tags"]}["starburst-dask:role"]


def test_a_waiting_cluster_launches_as_soon_as_another_one_closes(aws):
    """Two clusters share a 6 vCPU quota: the second one's workers wait for the first to
    close, then launch within seconds, though the per-minute usage metric still shows
    the first one's tasks for up to a minute."""
    aws.set_quota(6)
    ecs = boto3.client("ecs")

    def close_first_once_second_runs(first):
        wait_until(
            lambda: any(
                t["lastStatus"] == "RUNNING" and role(t) == "scheduler"
                for t in tasks_of(ecs, "second")
            ),
            timeout=120,
        )
        first.close()

    with Peak(aws) as peak:
        # 1 vCPU scheduler + 2 x 2 vCPU workers: 5 of the 6 vCPU.
        with FargateCluster(n_workers=2, name="first", **BIG_WORKERS, **FAST) as first:
            closer = threading.Thread(target=close_first_once_second_runs, args=(first,))
            closer.start()
            try:
                # Its scheduler takes the last vCPU; its workers wait for the first to close.
                second = FargateCluster(n_workers=2, name="second", **BIG_WORKERS, **FAST)
            finally:
                closer.join()
        with second:
            # The first worker launched once room appeared, the second as soon as it too
            # had room (the first cluster's tasks may stop a little apart).
            wait_until(lambda: second.quota.running == 2, timeout=30)
            first_tasks = tasks_of(ecs, "first")
            workers = [t for t in tasks_of(ecs, "second") if role(t) == "worker"]
            assert {t["lastStatus"] for t in first_tasks} == {"STOPPED"}
            room = min(t["stoppedAt"] for t in first_tasks)
            closed = max(t["stoppedAt"] for t in first_tasks)
            assert min(t["createdAt"] for t in workers) >= room  # they waited
            assert (max(t["createdAt"] for t in workers) - closed).total_seconds() < 10
    assert peak.vcpus <= 6  # together, never above the quota
    assert aws.quota_refusals == 0
