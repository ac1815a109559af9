"""Docker Hub's anonymous pull limit, and the ECR pull through cache setup makes to avoid it.

One fresh local Fargate whose Docker Hub allows 3 anonymous pulls per address (AWS's
figure is in ``fargate.DOCKER_HUB_ANONYMOUS_PULLS``), and a private subnet whose tasks
reach the internet through one NAT gateway, hence share one address, as a large
cluster behind a NAT does. Everything through boto3 and the ``starburst-dask`` commands.
"""

import json

import boto3
import dask.config
import pytest
from click.testing import CliRunner
from distributed import Client
from helpers import DASK_IMAGE, private_dask_config, wait_until

from starburst_dask import FargateCluster
from starburst_dask.admin.config_file import CONFIG_FILE
from starburst_dask.admin.setup import setup
from starburst_dask.admin.teardown import managed_resources, teardown
from starburst_dask.aws.names import trust_policy
from starburst_dask.cli import main
from starburst_dask.errors import ConfigurationError
from starburst_dask.images.pull_through import cached_uri
from starburst_dask.local import LocalFargate

REGION = "us-east-1"
ACCOUNT = "123456789012"
ECS_CLUSTER = "starburst-dask"
PULLS = 3
PREFIX = "starburst-dask/docker-hub"
CACHED_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{PREFIX}/{DASK_IMAGE}"
SECRET = "ecr-pullthroughcache/docker-hub"


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """An unprepared local Fargate, Docker Hub's limit lowered, a dask config dir of ours."""
    directory = tmp_path_factory.mktemp("dask-config")
    with (
        private_dask_config(directory),
        LocalFargate(prepare=False, iam_propagation=0, docker_hub_pulls=PULLS) as fargate,
    ):
        fargate.config_dir = directory
        setup(allow_cidrs=["127.0.0.1/32"])
        dask.config.refresh()
        yield fargate


@pytest.fixture(scope="module")
def nat_subnet(aws):
    """A subnet of the default VPC routed to the internet through one NAT gateway."""
    ec2 = boto3.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    public = sorted(
        s["SubnetId"]
        for s in ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])[
            "Subnets"
        ]
    )[0]
    base = vpc["CidrBlock"].split(".")[:2]
    subnet = ec2.create_subnet(
        VpcId=vpc["VpcId"],
        AvailabilityZone="us-east-1a",
        CidrBlock=".".join([*base, "240", "0/24"]),
    )["Subnet"]["SubnetId"]
    table = ec2.create_route_table(VpcId=vpc["VpcId"])["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=allocation)["NatGateway"]
    ec2.create_route(
        RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat["NatGatewayId"]
    )
    return subnet


def run_behind_nat(subnet, image, count, execution_role=None):
    """``count`` tasks of ``image`` printing "ran", in ``subnet``; their final states."""
    ecs = boto3.client("ecs")
    definition = ecs.register_task_definition(
        family="pull",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        executionRoleArn=execution_role or dask.config.get("starburst.execution-role"),
        containerDefinitions=[
            {
                "name": "main",
                "image": image,
                "command": ["python", "-c", "print('ran')"],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": "/starburst-dask",
                        "awslogs-region": REGION,
                        "awslogs-stream-prefix": "pull",
                    },
                },
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    response = ecs.run_task(
        cluster=ECS_CLUSTER,
        taskDefinition=definition,
        launchType="FARGATE",
        count=count,
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [subnet],
                "assignPublicIp": "DISABLED",
                "securityGroups": dask.config.get("starburst.security-groups"),
            }
        },
    )
    assert response["failures"] == []
    arns = [t["taskArn"] for t in response["tasks"]]

    def described():
        return ecs.describe_tasks(cluster=ECS_CLUSTER, tasks=arns)["tasks"]

    wait_until(lambda: all(t["lastStatus"] == "STOPPED" for t in described()), timeout=60)
    return described()


def create_secret():
    return boto3.client("secretsmanager").create_secret(
        Name=SECRET, SecretString=json.dumps({"username": "u", "accessToken": "t"})
    )["ARN"]


def ran(task):
    return (
        task["stopCode"] == "EssentialContainerExited"
        and task["containers"][0].get("exitCode") == 0
    )


def test_tasks_behind_one_nat_beyond_docker_hubs_anonymous_limit_fail_as_on_aws(nat_subnet):
    tasks = run_behind_nat(nat_subnet, DASK_IMAGE, PULLS + 1)
    refused = [t for t in tasks if not ran(t)]
    assert len([t for t in tasks if ran(t)]) == PULLS
    assert len(refused) == 1
    assert refused[0]["stopCode"] == "TaskFailedToStart"
    reason = refused[0]["stoppedReason"]
    assert reason.startswith("CannotPullContainerError: ")
    assert "registry-1.docker.io/v2/daskdev/dask/manifests/sha256:" in reason
    assert (
        "Too Many Requests - Server message: toomanyrequests: You have reached your "
        "unauthenticated pull rate limit." in reason
    )


def test_setup_with_a_secret_of_another_name_or_region_changes_nothing(aws):
    ecr = boto3.client("ecr")
    for arn, problem in [
        (
            f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:docker-hub-AbCdEf",
            "begins with 'ecr-pullthroughcache/'",
        ),
        (f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:{SECRET}-AbCdEf", "in eu-west-1"),
        ("docker-hub", "not a Secrets Manager secret ARN"),
    ]:
        with pytest.raises(ConfigurationError, match=problem):
            setup(allow_cidrs=["127.0.0.1/32"], docker_hub_secret=arn)
    assert ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"] == []


def test_the_same_tasks_through_setups_pull_through_cache_all_start(aws, nat_subnet):
    arn = create_secret()
    result = CliRunner().invoke(
        main, ["setup", "--allow-cidr", "127.0.0.1/32", "--docker-hub-secret", arn, "--json"]
    )
    assert result.exit_code == 0, result.output
    dask.config.refresh()
    assert {
        "kind": "pull through cache rule",
        "name": PREFIX,
        "status": "created",
        "detail": "Docker Hub",
    } in json.loads(result.stdout)["resources"]
    assert f"image-cache: {PREFIX}" in (aws.config_dir / CONFIG_FILE).read_text()
    rules = boto3.client("ecr").describe_pull_through_cache_rules()["pullThroughCacheRules"]
    assert [
        (r["ecrRepositoryPrefix"], r["upstreamRegistryUrl"], r["credentialArn"]) for r in rules
    ] == [(PREFIX, "registry-1.docker.io", arn)]

    # The NAT's address is over Docker Hub's limit; ECR pulls from Docker Hub instead.
    tasks = run_behind_nat(nat_subnet, CACHED_IMAGE, PULLS + 1)
    assert [t.get("stoppedReason") for t in tasks if not ran(t)] == []
    repositories = boto3.client("ecr").describe_repositories()["repositories"]
    assert f"{PREFIX}/daskdev/dask" in [r["repositoryName"] for r in repositories]


def test_setup_is_idempotent_for_the_rule(aws):
    arn = boto3.client("secretsmanager").describe_secret(SecretId=SECRET)["ARN"]
    for secret in (arn, None):  # the same secret again, then none: the rule is kept
        result = setup(allow_cidrs=["127.0.0.1/32"], docker_hub_secret=secret)
        assert not result.changed
        assert ("pull through cache rule", PREFIX, "exists") in [
            (r.kind, r.name, r.status) for r in result.resources
        ]
        assert result.settings["image-cache"] == PREFIX
    rules = boto3.client("ecr").describe_pull_through_cache_rules()["pullThroughCacheRules"]
    assert [r["ecrRepositoryPrefix"] for r in rules] == [PREFIX]


def test_execution_role_without_the_import_permissions_cannot_pull_through(aws, nat_subnet):
    trust = trust_policy("ecs-tasks.amazonaws.com")
    role = boto3.client("iam").create_role(
        RoleName="plain-execution", AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]["Arn"]
    [task] = run_behind_nat(nat_subnet, CACHED_IMAGE, 1, execution_role=role)
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith("CannotPullContainerError: ")
    assert "pull access denied" in task["stoppedReason"]


def test_cluster_after_setup_runs_the_cached_image_and_computes(aws):
    with (
        dask.config.set({"starburst.n-workers": 1, "starburst.poll-interval": 0.5}),
        FargateCluster() as cluster,
        Client(cluster) as client,
    ):
        ecs = boto3.client("ecs")
        task = ecs.describe_tasks(cluster=ECS_CLUSTER, tasks=[cluster.scheduler.task_arn])["tasks"][
            0
        ]
        definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])[
            "taskDefinition"
        ]
        assert definition["containerDefinitions"][0]["image"] == CACHED_IMAGE
        assert client.submit(sum, [1, 2, 3]).result() == 6


@pytest.mark.parametrize(
    ("image", "uri"),
    [
        ("daskdev/dask:2025.1.0-py3.12", "R/P/daskdev/dask:2025.1.0-py3.12"),
        ("python:3.12", "R/P/library/python:3.12"),
        ("docker.io/library/python", "R/P/library/python:latest"),
        ("ghcr.io/dask/dask:latest", None),
    ],
)
def test_cached_uri_of_docker_hub_images(image, uri):
    assert cached_uri(image, "R", "P") == uri


def test_teardown_removes_the_rule_and_its_repositories(aws):
    session, found = managed_resources()
    teardown(session, found)
    ecr = boto3.client("ecr")
    assert ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"] == []
    assert [
        r["repositoryName"]
        for r in ecr.describe_repositories()["repositories"]
        if r["repositoryName"].startswith(PREFIX)
    ] == []
