"""The local Fargate's task latencies, as DescribeTasks and EC2 show them.

PROVISIONING while the ENI is created (the attachment CREATED, its private IP in the
details) and attached, PENDING while the image is pulled, DEPROVISIONING (the ENI
DETACHING) before STOPPED: each phase takes at least its configured minimum, read from
ECS's own timestamps.
"""

import boto3
import pytest
from test_local import CLUSTER, describe, details, register, run, wait_status, wait_until

from starburst_dask.local import LocalFargate
from starburst_dask.local.images import BASE_COMPRESSED_BYTES
from starburst_dask.local.latency import PROFILES, Latency

#: Slow enough for a poller to see every phase, fast enough for a test.
LATENCY = {
    "eni_created": (0.5, 0.5),
    "eni_attached": (1.5, 1.5),
    "pull_rate": (50.0, 50.0),
    "deprovisioning": (1.0, 1.0),
}
#: At 50 MB/s, no pull is shorter than the base image's.
MIN_PULL = BASE_COMPRESSED_BYTES / 50e6
SLEEPER = ["python", "-c", "import time; time.sleep(600)"]


@pytest.fixture(scope="module")
def aws():
    with LocalFargate(vcpu_quota=16, latency=LATENCY) as fargate:
        yield fargate


def seconds(later, earlier):
    return (later - earlier).total_seconds()


def test_the_eni_and_its_private_ip_appear_while_the_task_is_provisioning(aws):
    ecs, ec2 = boto3.client("ecs"), boto3.client("ec2")
    [answered] = run(ecs, register(ecs, SLEEPER))
    arn = answered["taskArn"]
    try:
        attachment = answered["attachments"][0]
        assert answered["lastStatus"] == "PROVISIONING"
        assert attachment["status"] == "PRECREATED"
        assert [d["name"] for d in attachment["details"]] == ["subnetId"]
        assert answered["containers"][0].get("networkInterfaces", []) == []

        def eni_created():
            [task] = describe(ecs, [arn])
            return task if len(task["attachments"][0]["details"]) > 1 else None

        task = wait_until(eni_created)
        assert task["lastStatus"] == "PROVISIONING"  # attached only later
        assert task["attachments"][0]["status"] in ("CREATED", "ATTACHING")
        ip = details(task)["privateIPv4Address"]
        assert task["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] == ip
        [eni] = ec2.describe_network_interfaces(
            NetworkInterfaceIds=[details(task)["networkInterfaceId"]]
        )["NetworkInterfaces"]
        assert eni["PrivateIpAddress"] == ip

        [task] = wait_status(ecs, [arn], "RUNNING")
        assert task["attachments"][0]["status"] == "ATTACHED"
        assert details(task)["privateIPv4Address"] == ip
        provisioning = LATENCY["eni_created"][0] + LATENCY["eni_attached"][0]
        assert seconds(task["pullStartedAt"], task["createdAt"]) >= provisioning
        assert seconds(task["pullStoppedAt"], task["pullStartedAt"]) >= MIN_PULL
        assert task["startedAt"] >= task["pullStoppedAt"]
    finally:
        ecs.stop_task(cluster=CLUSTER, task=arn)
        wait_status(ecs, [arn], "STOPPED")


def test_a_stopped_task_deprovisions_its_eni_before_stopped(aws):
    ecs, ec2 = boto3.client("ecs"), boto3.client("ec2")
    [answered] = run(ecs, register(ecs, SLEEPER))
    arn = answered["taskArn"]
    wait_status(ecs, [arn], "RUNNING")
    ecs.stop_task(cluster=CLUSTER, task=arn)
    [task] = wait_status(ecs, [arn], "DEPROVISIONING")
    assert task["attachments"][0]["status"] == "DETACHING"
    eni = details(task)["networkInterfaceId"]
    assert ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"]
    [task] = wait_status(ecs, [arn], "STOPPED")
    assert task["attachments"][0]["status"] == "DELETED"
    assert details(task)["networkInterfaceId"] == eni  # still shown, as AWS keeps it
    deprovisioning = LATENCY["deprovisioning"][0]
    assert seconds(task["stoppedAt"], task["executionStoppedAt"]) >= deprovisioning


def test_a_task_stopped_while_provisioning_never_runs(aws):
    ecs = boto3.client("ecs")
    [answered] = run(ecs, register(ecs, SLEEPER))
    arn = answered["taskArn"]
    ecs.stop_task(cluster=CLUSTER, task=arn)
    [task] = wait_status(ecs, [arn], "STOPPED")
    assert task["stopCode"] == "UserInitiated"
    assert "startedAt" not in task and "pullStartedAt" not in task


def test_the_profile_is_chosen_by_name_or_config_and_unknown_names_are_refused():
    import dask

    assert LocalFargate(latency="aws").latency == PROFILES["aws"]
    with dask.config.set({"starburst.local.latency": "aws"}):
        assert LocalFargate().latency == PROFILES["aws"]
    assert LocalFargate().latency == PROFILES["fast"]  # the test session's
    explicit = LocalFargate(latency={"pull_rate": (1.0, 2.0)}).latency
    assert explicit.pull_rate == (1.0, 2.0)
    assert explicit.eni_created == PROFILES["aws"].eni_created  # the rest: AWS's
    assert LocalFargate(deprovisioning=(30, 60)).deprovisioning == (30.0, 60.0)
    with pytest.raises(ValueError, match="unknown latency profile 'slow': use one of aws, fast"):
        LocalFargate(latency="slow")
    with pytest.raises(ValueError, match="pull_rate must be 0 < low <= high"):
        Latency(**{**LATENCY, "pull_rate": (0, 1)})
