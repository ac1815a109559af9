"""ARM64 (Graviton) tasks: the option, the task definition, the prices, and the images.

Observed through the AWS API (DescribeTaskDefinition, RunTask, DescribeTasks) and in a
dask client's results, on the local Fargate.
"""

import contextlib
import json

import boto3
import dask.array as da
import pytest
from botocore.exceptions import ClientError
from distributed import Client
from helpers import DASK_IMAGE, PYTHON, stopped, wait_until

from starburst_dask import FargateCluster, fargate
from starburst_dask.ecs.tasks import FAMILY
from starburst_dask.errors import ConfigurationError
from starburst_dask.images import ImageArchitectureError
from starburst_dask.options import ClusterOptions

CLUSTER = "starburst-dask"
ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
FAST = {"poll_interval": 0.5}


@pytest.fixture
def ecs(local_fargate):
    return boto3.client("ecs")


def definition(ecs, architecture, image=DASK_IMAGE):
    """A Fargate task definition of ``architecture`` running ``python -c 'print(1)'``."""
    return ecs.register_task_definition(
        family="arm64",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        runtimePlatform={"cpuArchitecture": architecture, "operatingSystemFamily": "LINUX"},
        containerDefinitions=[
            {
                "name": "main",
                "image": image,
                "essential": True,
                "command": ["python", "-c", "print(1)"],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]


def run(ecs, task_definition, **kwargs):
    subnet = boto3.client("ec2").describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}]
    )["Subnets"][0]["SubnetId"]
    return ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=task_definition,
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [subnet], "assignPublicIp": "ENABLED"}
        },
        **kwargs,
    )


def pushed_index(repository, tag, platforms):
    """An image in the local ECR pushed as an OCI index of ``platforms`` (as buildx does,
    with its attestation manifest)."""
    ecr = boto3.client("ecr")
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repository)
    entries = [
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 7,
            "digest": "sha256:" + str(i) * 64,
            "platform": {"os": p.split("/")[0], "architecture": p.split("/")[1]},
        }
        for i, p in enumerate([*platforms, "unknown/unknown"], start=1)
    ]
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }
    with contextlib.suppress(ecr.exceptions.ImageAlreadyExistsException):
        ecr.put_image(
            repositoryName=repository,
            imageManifest=json.dumps(index),
            imageManifestMediaType=index["mediaType"],
            imageTag=tag,
        )
    return f"{ECR}/{repository}:{tag}"


# -- the option ----------------------------------------------------------------------------


def test_architecture_defaults_to_x86_64_and_accepts_arm64():
    assert ClusterOptions.resolve(region="us-east-1").architecture == "X86_64"
    assert ClusterOptions.resolve(region="us-east-1", architecture="ARM64").architecture == "ARM64"


@pytest.mark.parametrize("bad", ["arm64", "aarch64", "AMD64", 64])
def test_an_unknown_architecture_is_one_clear_error(bad):
    with pytest.raises(ConfigurationError) as e:
        ClusterOptions.resolve(region="us-east-1", architecture=bad)
    assert f"architecture must be 'X86_64' or 'ARM64', not {bad!r}" in str(e.value)


def test_arm64_on_spot_is_accepted_as_aws_accepts_it():
    # ECS API reference, CapacityProviderStrategyItem: FARGATE_SPOT runs ARM64 Linux tasks
    # on platform version 1.4.0 or later (since September 2024).
    for spot in (True, "fallback"):
        options = ClusterOptions.resolve(region="us-east-1", architecture="ARM64", spot=spot)
        assert options.spot == spot


# -- the local Fargate, as AWS ------------------------------------------------------------


def test_an_arm64_task_runs_on_fargate_spot_and_reports_its_architecture(ecs):
    arn = run(
        ecs,
        definition(ecs, "ARM64"),
        capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
    )["tasks"][0]["taskArn"]
    task = stopped(ecs, arn)
    assert task["capacityProviderName"] == "FARGATE_SPOT"
    assert task["containers"][0]["exitCode"] == 0
    assert {"name": "ecs.cpu-architecture", "value": "arm64"} in task["attributes"]


@pytest.mark.parametrize("provider", ["FARGATE", "FARGATE_SPOT"])
def test_arm64_needs_platform_version_1_4_0(ecs, provider):
    arm = definition(ecs, "ARM64")
    with pytest.raises(ClientError) as e:
        run(
            ecs,
            arm,
            platformVersion="1.3.0",
            capacityProviderStrategy=[{"capacityProvider": provider, "weight": 1}],
        )
    assert e.value.response["Error"] == {
        "Code": "PlatformTaskDefinitionIncompatibilityException",
        "Message": "One or more of the requested capabilities are not supported.",
    }
    assert run(ecs, arm, platformVersion="1.4.0", launchType="FARGATE")["failures"] == []


def test_an_image_without_the_tasks_platform_fails_to_pull_in_aws_words(ecs):
    image = pushed_index("amd64-only", f"2026.1.0-py{PYTHON}-00000000000000aa", ["linux/amd64"])
    arn = run(ecs, definition(ecs, "ARM64", image), launchType="FARGATE")["tasks"][0]["taskArn"]
    task = stopped(ecs, arn)
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"] == (
        "CannotPullContainerError: pull image manifest has been retried 7 time(s): image "
        "Manifest does not contain descriptor matching platform 'linux/arm64'"
    )
    # The same image runs on X86_64.
    arn = run(ecs, definition(ecs, "X86_64", image), launchType="FARGATE")["tasks"][0]["taskArn"]
    assert stopped(ecs, arn)["containers"][0]["exitCode"] == 0


# -- the cluster -----------------------------------------------------------------------------


def test_an_arm64_image_mismatch_is_an_error_before_any_task(local_fargate):
    image = pushed_index("amd64-only", f"2026.1.0-py{PYTHON}-00000000000000aa", ["linux/amd64"])
    local_fargate.reset_counters()
    with pytest.raises(ImageArchitectureError) as e:
        FargateCluster(image=image, architecture="ARM64", n_workers=1, **FAST)
    assert "provides linux/amd64, not linux/arm64" in str(e.value)
    assert "architecture='X86_64'" in str(e.value)
    assert local_fargate.calls["RegisterTaskDefinition"] == local_fargate.calls["RunTask"] == 0


def test_an_arm64_cluster_registers_arm64_computes_and_is_priced_at_arm_rates(local_fargate, ecs):
    with (
        FargateCluster(architecture="ARM64", n_workers=2, spot=True, **FAST) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2, timeout=120)
        registered = ecs.describe_task_definition(taskDefinition=FAMILY)["taskDefinition"]
        assert registered["runtimePlatform"] == {
            "cpuArchitecture": "ARM64",
            "operatingSystemFamily": "LINUX",
        }
        x = da.ones((1000, 1000), chunks=(100, 100))
        assert client.compute(x.sum()).result() == 1_000_000

        tasks = ecs.describe_tasks(
            cluster=CLUSTER,
            tasks=ecs.list_tasks(cluster=CLUSTER, desiredStatus="RUNNING")["taskArns"],
        )["tasks"]
        assert {
            a["value"]
            for t in tasks
            for a in t["attributes"]
            if a["name"] == "ecs.cpu-architecture"
        } == {"arm64"}
        # The scheduler On-Demand (launchType FARGATE), the workers on Spot.
        assert sorted(t.get("capacityProviderName", "") for t in tasks) == [
            "",
            "FARGATE_SPOT",
            "FARGATE_SPOT",
        ]

        # The estimate, from the local Price List API (its figures are fargate's table).
        table = fargate.PUBLISHED_PRICES["us-east-1"]
        options = cluster.options

        def arm(cpu, memory):
            return cpu / 1024 * table["ARM64-vCPU"] + memory / 1024 * table["ARM64-GB"]

        spot = 1 - cluster.cost.prices.spot_discount
        expected = arm(options.scheduler_cpu, options.scheduler_memory) + 2 * spot * arm(
            options.worker_cpu, options.worker_memory
        )
        assert cluster.cost.estimate_per_hour == pytest.approx(expected)
        assert "ARM64 rates" in cluster.cost.describe_estimate()
        # The live rate: every running task at ARM rates.
        wait_until(lambda: cluster.cost.rate == pytest.approx(expected), timeout=60)
