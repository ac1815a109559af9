"""A first run on a new account: setup on a fresh local Fargate, then a cluster at once.

The local Fargate here is not prepared: no ECS service-linked role, no roles, no cluster,
and IAM propagates new roles as AWS does (seconds later). This machine is the caller
outside the VPC (127.0.0.1); ``--allow-my-ip`` asks the local Fargate's ``/checkip``.
"""

import json

import boto3
import dask.config
import psutil
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from distributed import Client
from helpers import private_dask_config, wait_until

from starburst_dask import FargateCluster
from starburst_dask.admin.managed import MANAGED_TAG
from starburst_dask.admin.roles import TRUST_ECS_TASKS
from starburst_dask.admin.setup import setup as run_setup
from starburst_dask.cli import main
from starburst_dask.errors import ConfigurationError, MissingResourceError
from starburst_dask.images.build import build_bucket
from starburst_dask.images.builders import CODEBUILD_ROLE, CodeBuildBuilder
from starburst_dask.local import LocalFargate, pricing


@pytest.fixture
def fresh(tmp_path):
    """A new account (unprepared local Fargate) and a dask config directory of our own."""
    with private_dask_config(tmp_path), LocalFargate(prepare=False) as aws:
        yield aws


def test_a_new_accounts_first_cluster_with_capacity_providers_fails_as_on_aws(fresh):
    ecs, iam = fresh.client("ecs"), fresh.client("iam")
    with pytest.raises(ClientError) as refused:
        ecs.create_cluster(clusterName="first", capacityProviders=["FARGATE"])
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    assert (
        "Unable to assume the service linked role. Please verify that the ECS service "
        "linked role exists." in str(refused.value)
    )
    # ECS created its service-linked role meanwhile; creating it again is refused.
    role = iam.get_role(RoleName="AWSServiceRoleForECS")["Role"]
    assert role["Path"] == "/aws-service-role/ecs.amazonaws.com/"
    with pytest.raises(ClientError, match="has been taken in this account"):
        iam.create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    assert ecs.describe_clusters(clusters=["first"])["clusters"] == []


def setup_cli(*args):
    result = CliRunner().invoke(main, ["setup", *args], catch_exceptions=False)
    dask.config.refresh()  # read the file setup wrote, as a new process would
    return result


def account(aws):
    """What the account holds, across the services setup touches, read at the API."""
    iam, ec2 = aws.client("iam"), aws.client("ec2")
    return {
        "clusters": aws.client("ecs").list_clusters()["clusterArns"],
        "roles": {
            r["RoleName"]: (
                r["AssumeRolePolicyDocument"],
                sorted(iam.list_role_policies(RoleName=r["RoleName"])["PolicyNames"]),
            )
            for r in iam.list_roles()["Roles"]
        },
        "log groups": aws.client("logs").describe_log_groups()["logGroups"],
        "security groups": ec2.describe_security_groups()["SecurityGroups"],
        "repositories": [
            r["repositoryName"] for r in aws.client("ecr").describe_repositories()["repositories"]
        ],
        "projects": aws.client("codebuild").list_projects()["projects"],
    }


def admitted(aws, group_id):
    """The networks a security group admits to the scheduler port."""
    [group] = aws.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    return {
        r["CidrIp"]
        for p in group["IpPermissions"]
        if p.get("FromPort") == 8786
        for r in p["IpRanges"]
    }


def compute_and_leave_nothing(aws, **options):
    """A cluster of 2 workers from this machine computes, closes, and leaves no task."""
    with (
        dask.config.set({"starburst.poll-interval": 0.5}),
        FargateCluster(n_workers=2, **options) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2, timeout=120)
        assert client.submit(sum, [1, 2, 3]).result() == 6
        assert sum(client.gather(client.map(lambda x: x * x, range(10)))) == 285
        arns = [cluster.scheduler.task_arn] + [w.task_arn for w in cluster.workers.values()]
    ecs = aws.client("ecs")
    wait_until(
        lambda: ecs.list_tasks(cluster="starburst-dask", desiredStatus="RUNNING")["taskArns"] == [],
        timeout=60,
    )
    described = ecs.describe_tasks(cluster="starburst-dask", tasks=arns)["tasks"]
    assert {t["lastStatus"] for t in described} == {"STOPPED"}
    pids = [r["pid"] for r in aws.task_records() if r["arn"] in arns and r["pid"]]
    wait_until(
        lambda: (
            not [
                p
                for p in pids
                if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
            ]
        ),
        timeout=30,
    )


def test_setup_on_a_new_account_then_a_cluster_at_once(fresh, caplog):
    # Without the CodeBuild project, whose own role's propagation would outlast the ECS
    # roles' before the cluster starts.
    result = setup_cli("--allow-cidr", "127.0.0.1/32", "--no-codebuild")
    assert result.exit_code == 0, result.output
    assert "Waiting (up to 60 s) for AWS to propagate the ECS service-linked role" in result.output
    assert "IAM roles were created or changed" in result.output
    compute_and_leave_nothing(fresh)
    # The roles setup had just made were not usable yet: the launch waited them out.
    assert "ECS cannot use the cluster's IAM roles yet" in caplog.text


def test_allow_my_ip_admits_this_machine_to_public_tasks_and_setup_is_idempotent(fresh):
    result = setup_cli("--allow-my-ip")
    assert result.exit_code == 0, result.output
    assert "is closed to every network outside" not in result.output
    [group] = dask.config.get("starburst.security-groups")
    # The local Fargate's /checkip answers this machine's address, as AWS's would.
    assert admitted(fresh, group) == {"127.0.0.1/32"}
    compute_and_leave_nothing(fresh, assign_public_ip=True)

    before = account(fresh)
    again = setup_cli("--allow-my-ip", "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["changed"] is False
    assert {r["status"] for r in report["resources"]} == {"exists"}
    assert account(fresh) == before  # created nothing, changed nothing
    compute_and_leave_nothing(fresh)


def test_setup_offers_the_callers_address_only_when_the_port_is_closed_to_it(fresh):
    plain = setup_cli()  # no terminal here: nothing asked, the closed port said
    assert plain.exit_code == 0, plain.output
    assert "The scheduler port 8786 is closed to every network outside VPC" in plain.output
    assert "--allow-my-ip" in plain.output
    [group] = dask.config.get("starburst.security-groups")
    assert admitted(fresh, group) == set()

    asked = []
    run_setup(ask=lambda question: asked.append(question) or True)
    assert len(asked) == 1 and "8786 would be closed to this machine" in asked[0]
    assert admitted(fresh, group) == {"127.0.0.1/32"}
    run_setup(ask=lambda question: asked.append(question) or True)
    assert len(asked) == 1  # admitted now: not asked again


def test_allow_my_ip_without_an_answer_is_an_error_and_changes_nothing(fresh):
    before = account(fresh)
    with dask.config.set({"starburst.setup.checkip-url": fresh.endpoint_url + "/nothing"}):
        result = setup_cli("--allow-my-ip")
    assert result.exit_code == 1, result.output
    assert "could not detect your public address from" in result.output
    assert "pass --allow-cidr" in result.output
    assert account(fresh) == before


def test_setup_codebuild_makes_the_image_path_without_docker_reachable(fresh):
    session = boto3.session.Session()
    builder = CodeBuildBuilder(
        session,
        dask.config.get("starburst.image-build-project"),
        build_bucket(session),
        progress=print,
    )
    with pytest.raises(MissingResourceError, match="run: starburst-dask setup --codebuild"):
        builder.check()

    result = setup_cli("--codebuild", "--allow-my-ip")
    assert result.exit_code == 0, result.output
    # CodeBuild refused the project while its new role propagated; setup waited.
    assert (
        f"Waiting (up to 60 s) for AWS to propagate the CodeBuild role {CODEBUILD_ROLE}"
        in result.output
    )
    [project] = fresh.client("codebuild").batch_get_projects(names=["starburst-dask-images"])[
        "projects"
    ]
    assert project["serviceRole"].endswith(f":role/{CODEBUILD_ROLE}")
    builder.check()  # the project and the bucket exist now
    again = setup_cli("--codebuild", "--allow-my-ip", "--json")
    assert json.loads(again.stdout)["changed"] is False


def test_codebuild_refuses_a_project_whose_role_it_cannot_assume_yet(fresh):
    iam, codebuild = fresh.client("iam"), fresh.client("codebuild")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "codebuild.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    arn = iam.create_role(RoleName="builds", AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    project = {
        "name": "builds",
        "source": {"type": "S3", "location": "b/k"},
        "artifacts": {"type": "NO_ARTIFACTS"},
        "serviceRole": arn,
        "environment": {
            "type": "LINUX_CONTAINER",
            "computeType": "BUILD_GENERAL1_SMALL",
            "image": "aws/codebuild/amazonlinux2-x86_64-standard:5.0",
        },
    }
    with pytest.raises(ClientError) as refused:
        codebuild.create_project(**project)
    assert refused.value.response["Error"]["Code"] == "InvalidInputException"
    assert (
        refused.value.response["Error"]["Message"]
        == f"CodeBuild is not authorized to perform: sts:AssumeRole on {arn}"
    )
    wait_until(
        lambda: _once_propagated(
            lambda: codebuild.create_project(**project), "not authorized to perform: sts:AssumeRole"
        ),
        timeout=30,
    )  # once it propagated


def _once_propagated(call, refusal):
    """Make ``call``; False while AWS refuses it with ``refusal`` (a role not propagated)."""
    try:
        call()
    except ClientError as e:
        if refusal not in str(e):
            raise
        return False
    return True


@pytest.mark.parametrize(
    "arrange, args, words",
    [
        (
            "task role",
            ["--s3-bucket", "data"],
            ["--s3-bucket data cannot be applied", "starburst-dask-task"],
        ),
        ("untrusting role", [], ["does not trust ecs-tasks.amazonaws.com"]),
        (
            "security group",
            ["--allow-cidr", "203.0.113.7/32"],
            ["203.0.113.7/32 cannot be admitted", "not created by setup"],
        ),
        ("security group", ["--allow-my-ip"], ["127.0.0.1/32 cannot be admitted"]),
    ],
)
def test_an_option_setup_cannot_apply_is_an_error_and_changes_nothing(fresh, arrange, args, words):
    iam, ec2 = fresh.client("iam"), fresh.client("ec2")
    if arrange == "task role":  # a role of setup's name that setup did not create
        iam.create_role(
            RoleName="starburst-dask-task", AssumeRolePolicyDocument=json.dumps(TRUST_ECS_TASKS)
        )
    elif arrange == "untrusting role":
        iam.create_role(
            RoleName="starburst-dask-execution",
            AssumeRolePolicyDocument=json.dumps(
                {
                    **TRUST_ECS_TASKS,
                    "Statement": [
                        {
                            **TRUST_ECS_TASKS["Statement"][0],
                            "Principal": {"Service": "ec2.amazonaws.com"},
                        }
                    ],
                }
            ),
        )
    else:
        [vpc] = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
        ec2.create_security_group(
            GroupName="starburst-dask", Description="mine", VpcId=vpc["VpcId"]
        )
    before = account(fresh)
    result = setup_cli(*args)
    assert result.exit_code == 1, result.output
    assert "setup changed nothing" in result.output
    for word in words:
        assert word in result.output
    assert account(fresh) == before


def test_setup_adds_fargate_to_an_adopted_clusters_providers(fresh):
    ecs = fresh.client("ecs")
    fresh.client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    ecs.create_cluster(
        clusterName="starburst-dask", tags=[{"key": MANAGED_TAG[0], "value": MANAGED_TAG[1]}]
    )
    ecs.create_capacity_provider(
        name="mine",
        autoScalingGroupProvider={
            "autoScalingGroupArn": "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:"
            "0a0a0a0a-0000-0000-0000-000000000000:autoScalingGroupName/mine"
        },
    )
    wait_until(lambda: _providers(ecs, ["mine"]), timeout=30)  # once the new role propagated

    result = CliRunner().invoke(main, ["setup"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [cluster] = ecs.describe_clusters(clusters=["starburst-dask"])["clusters"]
    assert cluster["capacityProviders"] == ["mine", "FARGATE", "FARGATE_SPOT"]


def _providers(ecs, names):
    """Set the cluster's providers; False while ECS cannot use its service-linked role."""
    return _once_propagated(
        lambda: ecs.put_cluster_capacity_providers(
            cluster="starburst-dask", capacityProviders=names, defaultCapacityProviderStrategy=[]
        ),
        "Unable to assume the service linked role",
    )


@pytest.mark.parametrize(
    "options, words",
    [
        ({"name": "c" * 129}, ["1-128 letters", "startedBy"]),
        ({"tags": {f"t{i}": "v" for i in range(49)}}, ["49 tags", "at most 48"]),
        ({"tags": {"k" * 129: "v"}}, ["129 characters", "1 to 128"]),
        ({"tags": {"team": "v" * 257}}, ["257 characters", "at most 256"]),
        ({"tags": {"aws:team": "data"}}, ["tag key 'aws:team'", "reserves"]),
        ({"tags": {"team": "AWS:data"}}, ["tag value 'AWS:data'", "reserves"]),
        ({"environment": {"TOKEN": "x" * 8000}}, ["RunTask overrides", "8192", "TOKEN"]),
    ],
)
def test_limits_are_checked_before_any_aws_call(fresh, options, words):
    fresh.reset_counters()
    priced = sum(pricing.calls.values())
    with pytest.raises(ConfigurationError) as bad:
        FargateCluster(region="us-east-1", **options)
    for word in words:
        assert word in str(bad.value)
    assert not fresh.calls and sum(pricing.calls.values()) == priced
