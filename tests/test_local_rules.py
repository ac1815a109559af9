"""AWS's documented limits and IAM as ECS meets it, on the local Fargate, rule by rule.

Each rule is broken by one request through the real AWS clients (botocore's client-side
validation on), and the local Fargate answers as AWS does: its error code and the gist of
its message, or the task's failure reason. The same request with valid values succeeds.
"""

import asyncio
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from helpers import DASK_IMAGE, stopped, wait_until

from starburst_dask import fargate
from starburst_dask.aws.names import trust_policy
from starburst_dask.cost import prices
from starburst_dask.ecs.launcher import TaskLauncher
from starburst_dask.errors import TaskFailedError
from starburst_dask.local import LocalFargate, pricing

CLUSTER = "starburst-dask"
SLEEP = ["python", "-c", "import time; time.sleep(600)"]
PROPAGATION = 3.0  # seconds; short, so that waiting it out stays quick
TRUST = trust_policy("ecs-tasks.amazonaws.com")
TRUST_EC2 = trust_policy("ec2.amazonaws.com")


@dataclasses.dataclass
class Account:
    """The local Fargate with what the rules need: clients, network, roles, a definition."""

    aws: LocalFargate
    ecs: Any
    ec2: Any
    iam: Any
    subnet: str
    group: str
    execution_role: str
    task_role: str
    definition: str
    started: list[str] = dataclasses.field(default_factory=list)

    def register(self, **changes: Any) -> str:
        """A Fargate task definition as the cluster writes one, with ``changes``."""
        container = {
            "name": "main",
            "image": DASK_IMAGE,
            "command": SLEEP,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": "/starburst-dask",
                    "awslogs-region": "us-east-1",
                    "awslogs-stream-prefix": "rules",
                },
            },
        }
        request = {
            "family": "rules",
            "requiresCompatibilities": ["FARGATE"],
            "networkMode": "awsvpc",
            "cpu": "256",
            "memory": "512",
            "executionRoleArn": self.execution_role,
            "taskRoleArn": self.task_role,
            "containerDefinitions": [container],
            **changes,
        }
        answer = self.ecs.register_task_definition(**request)
        return answer["taskDefinition"]["taskDefinitionArn"]

    def run(self, **changes: Any) -> dict[str, Any]:
        """RunTask of one sleeping task, with ``changes`` to the request."""
        request = {
            "cluster": CLUSTER,
            "taskDefinition": self.definition,
            "launchType": "FARGATE",
            "networkConfiguration": network([self.subnet], [self.group]),
            **changes,
        }
        answer = self.ecs.run_task(**request)
        self.started += [t["taskArn"] for t in answer["tasks"]]
        return answer


def network(subnets: list[str], groups: list[str]) -> dict[str, Any]:
    return {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": groups}}


@pytest.fixture(scope="module")
def account():
    with LocalFargate(vcpu_quota=64, iam_propagation=PROPAGATION) as aws:
        ec2, iam = aws.client("ec2"), aws.client("iam")
        vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
        subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
        group = ec2.describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc["VpcId"]]},
                {"Name": "group-name", "Values": ["default"]},
            ]
        )["SecurityGroups"][0]
        roles = {
            n: iam.get_role(RoleName=f"starburst-dask-{n}")["Role"]["Arn"]
            for n in ("execution", "task")
        }
        acct = Account(
            aws,
            aws.client("ecs"),
            ec2,
            iam,
            subnet["Subnets"][0]["SubnetId"],
            group["GroupId"],
            roles["execution"],
            roles["task"],
            "",
        )
        acct.definition = acct.register()
        yield acct


@pytest.fixture(autouse=True)
def stop_started_tasks(account):
    """The tasks a test started are stopped at its end: none outlives it."""
    yield
    started, account.started = account.started, []
    for arn in started:
        account.ecs.stop_task(cluster=CLUSTER, task=arn, reason="test over")
    for arn in started:
        stopped(account.ecs, arn, cluster=CLUSTER)


# --- the rules: (id, request breaking the rule, same request valid, code, gist) ------------


def _tags(n: int, key: str = "k", value: str = "v") -> list[dict[str, str]]:
    return [{"key": f"{key}{i}" if n > 1 else key, "value": value} for i in range(n)]


def _env(chars: int) -> dict[str, Any]:
    return {
        "containerOverrides": [
            {"name": "main", "environment": [{"name": "X", "value": "x" * chars}]}
        ]
    }


def _other_vpc_group(a: Account) -> str:
    vpc = a.ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    return a.ec2.create_security_group(GroupName="elsewhere", Description="other vpc", VpcId=vpc)[
        "GroupId"
    ]


def _other_vpc_subnet(a: Account) -> str:
    vpc = a.ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    return a.ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]


def _role(a: Account, name: str, trust: dict[str, Any]) -> str:
    arn = a.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    return arn["Role"]["Arn"]


Call = Callable[[Account], Any]
RULES: list[tuple[str, Call, Call, str, str]] = [
    (
        "overrides over 8192 characters",
        lambda a: a.run(overrides=_env(8200)),
        lambda a: a.run(overrides=_env(8000)),
        "InvalidParameterException",
        "Container Overrides length must be at most 8192",
    ),
    (
        "startedBy over 128 characters",
        lambda a: a.run(startedBy="s" * 129),
        lambda a: a.run(startedBy="s" * 128),
        "InvalidParameterException",
        "startedBy longer than 128.",
    ),
    (
        "startedBy outside its characters",
        lambda a: a.run(startedBy="caller's run"),
        lambda a: a.run(startedBy="a/b_c-D9"),
        "InvalidParameterException",
        "startedBy contains invalid characters.",
    ),
    # The ECS model bounds a request's own tags: its validation answers first, as on AWS.
    (
        "51 tags on a task",
        lambda a: a.run(tags=_tags(51)),
        lambda a: a.run(tags=_tags(50)),
        "InvalidParameterException",
        "Member must have length less than or equal to 50",
    ),
    (
        "tag key over 128 characters",
        lambda a: a.run(tags=_tags(1, key="k" * 129)),
        lambda a: a.run(tags=_tags(1, "k" * 128)),
        "InvalidParameterException",
        "Member must have length less than or equal to 128",
    ),
    (
        "tag value over 256 characters",
        lambda a: a.run(tags=_tags(1, value="v" * 257)),
        lambda a: a.run(tags=_tags(1, value="v" * 256)),
        "InvalidParameterException",
        "Member must have length less than or equal to 256",
    ),
    (
        "tag key with the reserved aws: prefix",
        lambda a: a.run(tags=_tags(1, key="AWS:team")),
        lambda a: a.run(tags=_tags(1, "team")),
        "InvalidParameterException",
        "reserved for AWS use",
    ),
    (
        "task-level override not a Fargate size",
        lambda a: a.run(overrides={"cpu": "256", "memory": "4096"}),
        lambda a: a.run(overrides={"cpu": "512", "memory": "4096"}),
        "ClientException",
        "No Fargate configuration exists for given values.",
    ),
    (
        "security group that does not exist",
        lambda a: a.run(networkConfiguration=network([a.subnet], ["sg-0123456789abcdef0"])),
        lambda a: a.run(networkConfiguration=network([a.subnet], [a.group])),
        "InvalidParameterException",
        "The security group 'sg-0123456789abcdef0' does not exist",
    ),
    (
        "security group of another VPC",
        lambda a: a.run(networkConfiguration=network([a.subnet], [_other_vpc_group(a)])),
        lambda a: a.run(networkConfiguration=network([a.subnet], [a.group])),
        "InvalidParameterException",
        "belong to different networks",
    ),
    (
        "subnets of two VPCs",
        lambda a: a.run(networkConfiguration=network([a.subnet, _other_vpc_subnet(a)], [])),
        lambda a: a.run(networkConfiguration=network([a.subnet], [])),
        "InvalidParameterException",
        "same VPC",
    ),
    (
        "execution role that does not exist",
        lambda a: a.run(
            taskDefinition=a.register(
                executionRoleArn=a.execution_role.replace("execution", "missing")
            )
        ),
        lambda a: a.run(taskDefinition=a.register()),
        "ClientException",
        "ECS was unable to assume the role 'arn:aws:iam::123456789012:role/"
        "starburst-dask-missing' that was provided for this task",
    ),
    (
        "task role that does not trust ecs-tasks",
        lambda a: a.run(taskDefinition=a.register(taskRoleArn=_role(a, "ec2-only", TRUST_EC2))),
        lambda a: a.run(taskDefinition=a.register()),
        "ClientException",
        "Please verify that the role being passed has the proper trust",
    ),
    (
        "awslogs without an execution role",
        lambda a: a.register(executionRoleArn=""),
        lambda a: a.register(),
        "ClientException",
        "Fargate requires task definition to have execution role ARN to support log driver "
        "awslogs.",
    ),
    (
        "security group description outside EC2's characters",
        lambda a: a.ec2.create_security_group(GroupName="d1", Description="the caller's"),
        lambda a: a.ec2.create_security_group(GroupName="d2", Description="the caller (ok)"),
        "InvalidParameterValue",
        "Invalid security group description",
    ),
    (
        "security group name outside EC2's characters",
        lambda a: a.ec2.create_security_group(GroupName="caller's", Description="x"),
        lambda a: a.ec2.create_security_group(GroupName="callers", Description="x"),
        "InvalidParameterValue",
        "Invalid security group name",
    ),
    (
        "security group name starting with sg-",
        lambda a: a.ec2.create_security_group(GroupName="sg-mine", Description="x"),
        lambda a: a.ec2.create_security_group(GroupName="mine-sg", Description="x"),
        "InvalidParameterValue",
        "Group names may not be in the format sg-*.",
    ),
    (
        "EC2 tag key with the reserved aws: prefix",
        lambda a: a.ec2.create_tags(Resources=[a.group], Tags=[{"Key": "aws:x", "Value": "1"}]),
        lambda a: a.ec2.create_tags(Resources=[a.group], Tags=[{"Key": "x", "Value": "1"}]),
        "InvalidParameterValue",
        "Tag keys starting with 'aws:' are reserved for internal use",
    ),
    (
        "ECS resource tagged past 50 tags",
        lambda a: a.ecs.tag_resource(resourceArn=_tagged_cluster(a), tags=_tags(21, "more")),
        lambda a: a.ecs.tag_resource(resourceArn=_tagged_cluster(a), tags=_tags(20, "more")),
        "InvalidParameterException",
        "at most 50 tags",
    ),
    (
        "ECS tag value with the reserved aws: prefix",
        lambda a: a.ecs.create_cluster(clusterName="c1", tags=_tags(1, value="aws:x")),
        lambda a: a.ecs.create_cluster(clusterName="c1", tags=_tags(1, value="x")),
        "InvalidParameterException",
        "reserved for AWS use",
    ),
]


def _tagged_cluster(a: Account) -> str:
    """A cluster with 30 tags already."""
    arn = a.ecs.describe_clusters(clusters=[CLUSTER])["clusters"][0]["clusterArn"]
    a.ecs.tag_resource(resourceArn=arn, tags=_tags(30, "base"))
    return arn


@pytest.mark.parametrize("bad, good, code, gist", [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_rule_answers_as_aws_and_valid_values_pass(account, bad, good, code, gist):
    with pytest.raises(ClientError) as refused:
        bad(account)
    assert refused.value.response["Error"]["Code"] == code
    assert gist in refused.value.response["Error"]["Message"]
    answer = good(account)
    if isinstance(answer, dict) and "tasks" in answer:
        assert len(answer["tasks"]) == 1 and answer["failures"] == []


def test_refused_security_group_is_not_created(account):
    with pytest.raises(ClientError):
        account.run(networkConfiguration=network([account.subnet], ["sg-0fedcba987654321f"]))
    with pytest.raises(ClientError) as missing:
        account.ec2.describe_security_groups(GroupIds=["sg-0fedcba987654321f"])
    assert missing.value.response["Error"]["Code"] == "InvalidGroup.NotFound"


def test_runtime_platform_is_kept_and_reported(account):
    platform = {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}
    arn = account.register(family="arm", runtimePlatform=platform)
    described = account.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    assert described["runtimePlatform"] == platform


# --- IAM: eventual consistency -------------------------------------------------------------


def test_a_new_role_is_refused_until_it_has_propagated(account):
    fresh = _role(account, "fresh-task-role", TRUST)
    definition = account.register(family="fresh", taskRoleArn=fresh)
    with pytest.raises(ClientError) as refused:
        account.run(taskDefinition=definition)
    assert refused.value.response["Error"]["Code"] == "ClientException"
    assert f"ECS was unable to assume the role '{fresh}'" in str(refused.value)
    wait_until(lambda: _runs(account, definition), timeout=PROPAGATION + 10)


def test_a_changed_trust_policy_is_refused_until_it_has_propagated(account):
    name = "changing-role"
    arn = _role(account, name, TRUST)
    definition = account.register(family="changing", taskRoleArn=arn)
    wait_until(lambda: _runs(account, definition), timeout=PROPAGATION + 10)
    account.iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(TRUST))
    with pytest.raises(ClientError, match="ECS was unable to assume the role"):
        account.run(taskDefinition=definition)
    wait_until(lambda: _runs(account, definition), timeout=PROPAGATION + 10)


def _runs(account: Account, definition: str) -> bool:
    try:
        return bool(account.run(taskDefinition=definition)["tasks"])
    except ClientError as e:
        if "unable to assume the role" not in str(e):
            raise
        return False


# --- quota and capacity failures in AWS's words, recognised by the launcher --------------


def test_quota_failures_in_aws_words_are_what_the_launcher_recognises(account):
    aws = account.aws
    try:
        aws.set_quota(1)
        big = account.run(overrides={"cpu": "2048", "memory": "4096"})
        assert big["failures"] == [
            {"reason": "The requested CPU configuration is above your limit"}
        ]
        with pytest.raises(TaskFailedError, match="ask for a higher Fargate vCPU quota"):
            launch(account, cpu=2048, memory=4096)

        aws.set_quota(64)
        account.run()  # a task running: the limits below are set to what runs
        aws.account.task_limits["FARGATE"] = len(_running(account))
        refused = account.run()["failures"]
        assert refused == [
            {"reason": "You've reached the limit on the number of tasks you can run concurrently"}
        ]
        assert launch(account).quota_refused == 1  # handed to the quota governor

        aws.account.task_limits["FARGATE"] = None
        aws.set_quota(sum(int(t["cpu"]) for t in _described(account)) / 1024)
        refused = account.run()["failures"]
        assert refused == [
            {"reason": "You've reached the limit on the number of vCPUs you can run concurrently"}
        ]
        assert launch(account).quota_refused == 1
    finally:
        aws.account.task_limits["FARGATE"] = None
        aws.set_quota(64)
    assert launch(account).arns  # room again


def _running(account: Account) -> list[str]:
    return account.ecs.list_tasks(cluster=CLUSTER, desiredStatus="RUNNING")["taskArns"]


def _described(account: Account) -> list[dict[str, Any]]:
    arns = _running(account)
    return [
        t
        for i in range(0, len(arns), 100)
        for t in account.ecs.describe_tasks(cluster=CLUSTER, tasks=arns[i : i + 100])["tasks"]
        if t["lastStatus"] != "STOPPED"
    ]


def launch(account: Account, cpu: int = 256, memory: int = 512):
    """One task through the product's launcher (aiobotocore), as a cluster launches."""

    async def go():
        async with get_session().create_client("ecs") as ecs:
            launcher = TaskLauncher(
                ecs,
                CLUSTER,
                account.definition,
                subnets=[account.subnet],
                security_groups=[account.group],
                assign_public_ip=False,
                started_by="rules",
                deadline=10,
            )
            result = await launcher.run(
                1, command=SLEEP, cpu=cpu, memory=memory, environment={}, tags=[]
            )
            account.started.extend(result.arns)
            return result

    return asyncio.run(go())


# --- the Price List API: only where AWS serves it ------------------------------------------


@pytest.mark.parametrize("region", fargate.PRICING_REGIONS)
def test_price_list_answers_in_its_regions(account, region):
    client = boto3.client("pricing", region_name=region)
    answer = client.get_products(ServiceCode="AmazonECS", MaxResults=1)
    assert len(answer["PriceList"]) == 1


def test_price_list_elsewhere_cannot_be_reached(account):
    client = boto3.client(
        "pricing", region_name="eu-west-1", config=Config(retries={"max_attempts": 1})
    )
    with pytest.raises(BotoCoreError, match="Connection was closed"):
        client.get_products(ServiceCode="AmazonECS", MaxResults=1)


@pytest.mark.parametrize(
    "service, operation",
    [("ecs", "list_clusters"), ("ecr", "describe_repositories"), ("sts", "get_caller_identity")],
)
def test_a_region_aws_does_not_have_has_no_endpoint(account, service, operation):
    once = Config(retries={"max_attempts": 1})
    client = boto3.client(service, region_name="moon-east-1", config=once)
    with pytest.raises(BotoCoreError, match="Connection was closed"):
        getattr(client, operation)()
    getattr(boto3.client(service, region_name="sa-east-1", config=once), operation)()


@pytest.mark.parametrize("region", ["us-west-2", "eu-west-3", "ap-northeast-1", "sa-east-1"])
def test_the_product_reads_prices_of_any_region_from_a_serving_endpoint(account, region):
    refused = pricing.calls["refused"]
    rates = prices.fetch(region)  # raises if the endpoint cannot be reached
    assert set(rates) == set(fargate.PRICE_USAGE_TYPES.values())
    assert pricing.calls["refused"] == refused
