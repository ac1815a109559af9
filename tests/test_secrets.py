"""Container definition ``secrets`` on the local Fargate, as ECS resolves them.

A task's secrets are read with its execution role while it is PENDING and reach its
process's environment only; a secret the task cannot read stops it (TaskFailedToStart)
in AWS's words. Everything is seen through the real AWS clients: the values in the task's
own output (its CloudWatch log), the failures in DescribeTasks.
"""

import contextlib
import dataclasses
import json
import os
from typing import Any

import pytest
from botocore.exceptions import ClientError
from distributed import Client
from helpers import DASK_IMAGE, put_image, stopped, wait_until

from starburst_dask import FargateCluster, MissingResourceError, TaskFailedError
from starburst_dask.errors import ConfigurationError
from starburst_dask.local import LocalFargate

CLUSTER = "starburst-dask"
LOG_GROUP = "/starburst-dask"
PRINT_ENV = "import os; print('VALUE=' + repr(os.environ.get('{name}')))"
ROLE = "starburst-dask-execution"


@dataclasses.dataclass
class Account:
    aws: LocalFargate
    ecs: Any
    iam: Any
    secretsmanager: Any
    ssm: Any
    role_arn: str
    subnet: str

    def allow(self, statements: list[dict[str, Any]]) -> None:
        """The execution role's inline policy ``secrets``: these statements only."""
        document = {"Version": "2012-10-17", "Statement": statements}
        self.iam.put_role_policy(
            RoleName=ROLE, PolicyName="secrets", PolicyDocument=json.dumps(document)
        )

    def start(
        self,
        secrets: list[dict[str, str]],
        command: list[str],
        image: str = DASK_IMAGE,
        subnet: str | None = None,
    ) -> str:
        """Start one task of a definition taking ``secrets``, running ``command``."""
        definition = self.ecs.register_task_definition(
            family="secrets",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            executionRoleArn=self.role_arn,
            containerDefinitions=[
                {
                    "name": "main",
                    "image": image,
                    "command": command,
                    "secrets": secrets,
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": LOG_GROUP,
                            "awslogs-region": self.aws.region,
                            "awslogs-stream-prefix": "secrets",
                        },
                    },
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        [task] = self.ecs.run_task(
            cluster=CLUSTER,
            taskDefinition=definition,
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": [subnet or self.subnet],
                    "assignPublicIp": "DISABLED" if subnet else "ENABLED",
                }
            },
        )["tasks"]
        return task["taskArn"]

    def run(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """One task as :meth:`start` starts it: once STOPPED."""
        return stopped(self.ecs, self.start(*args, **kwargs))

    def printed(self, name: str, value_from: str) -> str:
        """What a task taking ``value_from`` as ``name`` finds in its environment."""
        task = self.run([{"name": name, "valueFrom": value_from}], printing(name))
        assert task["stopCode"] == "EssentialContainerExited", task.get("stoppedReason")
        stream = f"secrets/main/{task['taskArn'].rsplit('/', 1)[1]}"
        logs = self.aws.client("logs")
        events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream)["events"]
        [line] = [e["message"] for e in events if e["message"].startswith("VALUE=")]
        return line[len("VALUE=") :]

    def failure(self, secrets: list[dict[str, str]]) -> str:
        """The stoppedReason of a task taking ``secrets``, which must fail to start."""
        task = self.run(secrets, ["python", "-c", "pass"])
        assert task["stopCode"] == "TaskFailedToStart"
        assert "exitCode" not in task["containers"][0]
        return task["stoppedReason"]


def printing(name: str) -> list[str]:
    return ["python", "-c", PRINT_ENV.format(name=name)]


@pytest.fixture(scope="module")
def account():
    with LocalFargate(network_failure_delay=1.0) as aws:
        ec2, iam = aws.client("ec2"), aws.client("iam")
        vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
        yield Account(
            aws,
            aws.client("ecs"),
            iam,
            aws.client("secretsmanager"),
            aws.client("ssm"),
            iam.get_role(RoleName=ROLE)["Role"]["Arn"],
            subnets["Subnets"][0]["SubnetId"],
        )


def _secret(account: Account, name: str, value: str) -> str:
    return account.secretsmanager.create_secret(Name=name, SecretString=value)["ARN"]


def _allow_all_secrets(account: Account) -> None:
    account.allow(
        [
            {
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "ssm:GetParameters"],
                "Resource": "*",
            }
        ]
    )


def test_a_secret_reaches_the_process_environment_only(account):
    arn = _secret(account, "app/token", "s3cr3t-value")
    _allow_all_secrets(account)
    assert account.printed("TOKEN", arn) == "'s3cr3t-value'"
    described = account.ecs.describe_task_definition(taskDefinition="secrets")
    [container] = described["taskDefinition"]["containerDefinitions"]
    assert container["secrets"] == [{"name": "TOKEN", "valueFrom": arn}]
    assert "s3cr3t-value" not in json.dumps(described, default=str)


def test_a_json_key_and_a_version_stage_select_what_ecs_selects(account):
    arn = _secret(account, "app/db", json.dumps({"user": "ada", "port": 5432}))
    account.secretsmanager.put_secret_value(SecretId=arn, SecretString='{"user": "bob"}')
    _allow_all_secrets(account)
    assert account.printed("USER", f"{arn}:user::") == "'bob'"
    assert account.printed("USER", f"{arn}:user:AWSPREVIOUS:") == "'ada'"
    assert account.printed("PORT", f"{arn}:port:AWSPREVIOUS:") == "'5432'"
    assert account.printed("ALL", f"{arn}:::") == repr('{"user": "bob"}')


def test_a_missing_secret_fails_the_task_in_aws_words(account):
    _allow_all_secrets(account)
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/none-AbCdEf"
    reason = account.failure([{"name": "X", "valueFrom": arn}])
    assert reason.startswith(
        "ResourceInitializationError: unable to pull secrets or registry auth: execution "
        "resource retrieval failed: unable to retrieve secret from asm: service call has been "
        f"retried 1 time(s): failed to fetch secret {arn} from secrets manager: "
        "ResourceNotFoundException: Secrets Manager can't find the specified secret. "
        "status code: 400, request id: "
    )


def test_a_missing_json_key_fails_the_task_in_aws_words(account):
    arn = _secret(account, "app/keys", json.dumps({"present": "1"}))
    _allow_all_secrets(account)
    reason = account.failure([{"name": "X", "valueFrom": f"{arn}:absent::"}])
    assert reason == (
        "ResourceInitializationError: unable to pull secrets or registry auth: execution "
        "resource retrieval failed: unable to retrieve secret from asm: service call has been "
        "retried 1 time(s): retrieved secret from Secrets Manager did not contain json key "
        "absent"
    )


def test_a_secret_the_execution_role_may_not_read_fails_the_task(account):
    arn = _secret(account, "other/secret", "v")
    prefix = arn.split(":secret:")[0]
    account.allow(
        [
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": f"{prefix}:secret:app/*",
            }
        ]
    )
    task = account.run([{"name": "X", "valueFrom": arn}], ["python", "-c", "pass"])
    task_id = task["taskArn"].rsplit("/", 1)[1]
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith(
        "ResourceInitializationError: unable to pull secrets or registry auth: execution "
        "resource retrieval failed: unable to retrieve secret from asm: service call has been "
        f"retried 1 time(s): failed to fetch secret {arn} from secrets manager: "
        f"AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/{ROLE}/{task_id} "
        f"is not authorized to perform: secretsmanager:GetSecretValue on resource: {arn} "
        "because no identity-based policy allows the secretsmanager:GetSecretValue action "
        "status code: 400, request id: "
    )


def test_parameters_by_name_and_by_arn(account):
    account.ssm.put_parameter(Name="/app/password", Value="pa55", Type="SecureString")
    account.ssm.put_parameter(Name="plain", Value="p1", Type="String")
    _allow_all_secrets(account)
    arn = "arn:aws:ssm:us-east-1:123456789012:parameter/app/password"
    assert account.printed("PASSWORD", "/app/password") == "'pa55'"
    assert account.printed("PASSWORD", arn) == "'pa55'"
    assert account.printed("PLAIN", "plain") == "'p1'"


def test_a_missing_or_unreadable_parameter_fails_the_task(account):
    _allow_all_secrets(account)
    reason = account.failure([{"name": "X", "valueFrom": "/app/none"}])
    assert reason == (
        "ResourceInitializationError: unable to pull secrets or registry auth: execution "
        "resource retrieval failed: unable to retrieve secrets from ssm: service call has been "
        "retried 1 time(s): invalid ssm parameters: /app/none"
    )
    account.ssm.put_parameter(Name="/other/p", Value="v", Type="String")
    account.allow(
        [
            {
                "Effect": "Allow",
                "Action": "ssm:GetParameters",
                "Resource": "arn:aws:ssm:us-east-1:123456789012:parameter/app/*",
            }
        ]
    )
    reason = account.failure([{"name": "X", "valueFrom": "/other/p"}])
    assert "AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/" in reason
    assert (
        "is not authorized to perform: ssm:GetParameters on resource: "
        "arn:aws:ssm:us-east-1:123456789012:parameter/other/p because no identity-based "
        "policy allows the ssm:GetParameters action" in reason
    )


def test_secrets_need_an_execution_role(account):
    with pytest.raises(ClientError) as refused:
        account.ecs.register_task_definition(
            family="no-role",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            containerDefinitions=[
                {
                    "name": "main",
                    "image": DASK_IMAGE,
                    "secrets": [{"name": "X", "valueFrom": "/app/password"}],
                }
            ],
        )
    assert refused.value.response["Error"]["Code"] == "ClientException"
    assert refused.value.response["Error"]["Message"] == (
        "When you are specifying container secrets, you must also specify a value for "
        "'executionRoleArn'."
    )
    families = account.ecs.list_task_definition_families(familyPrefix="no-role")["families"]
    assert families == []


def test_a_secret_may_not_share_its_name_with_an_environment_variable(account):
    with pytest.raises(ClientError) as refused:
        account.ecs.register_task_definition(
            family="clash",
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            executionRoleArn=account.role_arn,
            containerDefinitions=[
                {
                    "name": "main",
                    "image": DASK_IMAGE,
                    "environment": [{"name": "DB", "value": "x"}],
                    "secrets": [{"name": "DB", "valueFrom": "/app/db"}],
                }
            ],
        )
    assert refused.value.response["Error"]["Code"] == "ClientException"
    assert refused.value.response["Error"]["Message"] == (
        "The secret name must be unique and not shared with any new or existing environment "
        "variables set on the container, such as 'DB'."
    )


def test_values_stay_out_of_describe_tasks_and_the_command_line(account):
    arn = _secret(account, "app/running", "never-shown-value")
    _allow_all_secrets(account)
    sleeper = ["python", "-c", "import time; time.sleep(600)"]
    arn_task = account.start([{"name": "SHOWN", "valueFrom": arn}], sleeper)

    def running():
        [t] = account.ecs.describe_tasks(cluster=CLUSTER, tasks=[arn_task])["tasks"]
        return t if t["lastStatus"] == "RUNNING" else None

    try:
        wait_until(running)
        described = account.ecs.describe_tasks(cluster=CLUSTER, tasks=[arn_task])
        assert "never-shown-value" not in json.dumps(described, default=str)
        [record] = [r for r in account.aws.task_records() if r["arn"] == arn_task]
        with open(f"/proc/{record['pid']}/cmdline", "rb") as cmdline:
            assert b"never-shown-value" not in cmdline.read()
    finally:
        account.ecs.stop_task(cluster=CLUSTER, task=arn_task)
        stopped(account.ecs, arn_task)


def test_the_prepared_execution_role_reads_the_projects_secrets_only(account):
    """``prepare()`` stands for setup: the project's secrets are readable, others not."""
    with contextlib.suppress(account.iam.exceptions.NoSuchEntityException):
        account.iam.delete_role_policy(RoleName=ROLE, PolicyName="secrets")
    own = _secret(account, "starburst-dask/cluster-1", "own-value")
    assert account.printed("OWN", own) == "'own-value'"
    other = _secret(account, "elsewhere/secret", "v")
    reason = account.failure([{"name": "X", "valueFrom": other}])
    assert "AccessDeniedException" in reason


def test_without_a_route_to_secrets_manager_the_task_stops_as_on_aws(account):
    """A private subnet whose endpoints serve ECR and Logs but not Secrets Manager."""
    ec2 = account.aws.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    base = vpc["CidrBlock"].split(".")[:2]
    subnet = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock=".".join([*base, "250", "0/24"]))
    subnet_id = subnet["Subnet"]["SubnetId"]
    table = ec2.create_route_table(VpcId=vpc["VpcId"])["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet_id)
    region = account.aws.region

    def endpoint(service: str) -> None:
        ec2.create_vpc_endpoint(
            VpcId=vpc["VpcId"],
            VpcEndpointType="Interface",
            ServiceName=f"com.amazonaws.{region}.{service}",
            SubnetIds=[subnet_id],
            PrivateDnsEnabled=True,
        )

    for service in ("ecr.api", "ecr.dkr", "logs"):
        endpoint(service)
    ec2.create_vpc_endpoint(
        VpcId=vpc["VpcId"],
        VpcEndpointType="Gateway",
        ServiceName=f"com.amazonaws.{region}.s3",
        RouteTableIds=[table],
    )
    ecr = account.aws.client("ecr")
    ecr.create_repository(repositoryName="private-secrets")
    put_image(ecr, "private-secrets", "1")
    image = f"123456789012.dkr.ecr.{region}.amazonaws.com/private-secrets:1"
    arn = _secret(account, "app/private", "private-value")
    _allow_all_secrets(account)
    secrets = [{"name": "PRIVATE", "valueFrom": arn}]
    task = account.run(secrets, printing("PRIVATE"), image=image, subnet=subnet_id)
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"] == (
        "ResourceInitializationError: unable to pull secrets or registry auth: execution "
        "resource retrieval failed: unable to retrieve secret from asm: service call has been "
        f"retried 5 time(s): failed to fetch secret {arn} from secrets manager: "
        "RequestCanceled: request context canceled caused by: context deadline exceeded. "
        "Please check your task network configuration."
    )
    endpoint("secretsmanager")
    task = account.run(secrets, printing("PRIVATE"), image=image, subnet=subnet_id)
    assert task["stopCode"] == "EssentialContainerExited", task.get("stoppedReason")


# --- FargateCluster(secrets=...) -------------------------------------------------------

FAST = {"n_workers": 1, "poll_interval": 0.5}


def _allow(account: Account, *resources: str) -> None:
    """As the user would: the execution role may read these secrets and parameters."""
    account.allow(
        [
            {
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "ssm:GetParameters"],
                "Resource": list(resources),
            }
        ]
    )


def test_a_cluster_s_tasks_get_secrets_that_no_request_shows(account):
    arn = _secret(account, "app/cluster-token", "cluster-secret-value")
    account.ssm.put_parameter(Name="/app/db-password", Value="db-pa55", Type="SecureString")
    parameter = "arn:aws:ssm:us-east-1:123456789012:parameter/app/db-password"
    _allow(account, arn, parameter)
    secrets = {"APP_TOKEN": arn, "DB_PASSWORD": "/app/db-password"}
    with FargateCluster(secrets=secrets, **FAST) as cluster, Client(cluster) as client:
        client.wait_for_workers(1, timeout=120)
        # os.getenv goes by reference: the task's own lookup (os.environ.get would carry
        # this process's environment along, by value).
        assert set(client.run(os.getenv, "APP_TOKEN").values()) == {"cluster-secret-value"}
        assert set(client.run(os.getenv, "DB_PASSWORD").values()) == {"db-pa55"}
        assert client.run_on_scheduler(os.getenv, "APP_TOKEN") == "cluster-secret-value"
        tasks = account.ecs.list_tasks(cluster=CLUSTER, desiredStatus="RUNNING")["taskArns"]
        described = account.ecs.describe_tasks(cluster=CLUSTER, tasks=tasks)["tasks"]
        # While the cluster runs: its revision (with its TLS secret) goes when it closes.
        definition = account.ecs.describe_task_definition(
            taskDefinition=described[0]["taskDefinitionArn"]
        )
    [container] = definition["taskDefinition"]["containerDefinitions"]
    assert [s for s in container["secrets"] if s["name"] in secrets] == [
        {"name": "APP_TOKEN", "valueFrom": arn},
        {"name": "DB_PASSWORD", "valueFrom": "/app/db-password"},
    ]
    shown = json.dumps([definition, described], default=str)  # overrides included
    assert all("overrides" in t for t in described)
    assert "cluster-secret-value" not in shown and "db-pa55" not in shown


def _nothing_launched(account: Account, error: type[Exception], secrets: dict[str, str]) -> str:
    account.aws.reset_counters()
    with pytest.raises(error) as refused:
        FargateCluster(secrets=secrets, **FAST)
    assert account.aws.calls["RunTask"] == 0
    assert account.aws.calls["RegisterTaskDefinition"] == 0
    return str(refused.value)


def test_a_missing_secret_or_parameter_is_refused_before_any_task(account):
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/absent-AbCdEf"
    _allow(account, "*")
    message = _nothing_launched(account, MissingResourceError, {"X": f"{arn}:key::"})
    assert f"secrets: X: Secrets Manager has no secret {arn} in us-east-1" in message
    message = _nothing_launched(account, MissingResourceError, {"Y": "/app/absent"})
    assert "secrets: Y: Systems Manager has no parameter /app/absent in us-east-1" in message


def test_a_secret_the_role_may_not_read_is_refused_with_the_statement_to_add(account):
    arn = _secret(account, "team/other", "v")
    _allow(account, "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/*")
    message = _nothing_launched(account, ConfigurationError, {"OTHER": arn})
    assert f"the execution role {ROLE} may not read OTHER" in message
    statement = {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": arn}
    assert json.dumps(statement) in message


def test_a_missing_json_key_fails_the_start_with_aws_words(account):
    arn = _secret(account, "app/partial", json.dumps({"present": "1"}))
    _allow(account, arn)
    account.aws.reset_counters()
    with pytest.raises(TaskFailedError) as failed:
        FargateCluster(secrets={"ABSENT": f"{arn}:absent::"}, **FAST)
    words = "retrieved secret from Secrets Manager did not contain json key absent"
    assert words in str(failed.value)
    stopped_tasks = account.ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED")["taskArns"]
    described = account.ecs.describe_tasks(cluster=CLUSTER, tasks=stopped_tasks)["tasks"]
    reasons = [t.get("stoppedReason", "") for t in described]
    assert any(r.startswith("ResourceInitializationError: ") and words in r for r in reasons)


def test_credentials_in_environment_are_refused_before_any_aws_call(account):
    account.aws.reset_counters()
    with pytest.raises(ConfigurationError) as refused:
        FargateCluster(environment={"GITHUB_TOKEN": "ghp_" + "b" * 36}, **FAST)
    assert "GITHUB_TOKEN looks like a token" in str(refused.value)
    assert "b" * 36 not in str(refused.value)
    assert sum(account.aws.calls.values()) == 0
