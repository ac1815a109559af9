"""Container definition ``secrets`` on the local Fargate, as ECS resolves them.

A task's secrets are read with its execution role while it is PENDING and reach its
process's environment only; a secret the task cannot read stops it (TaskFailedToStart)
in AWS's words. Everything is seen through the real AWS clients: the values in the task's
own output (its CloudWatch log), the failures in DescribeTasks.
"""

import contextlib
import dataclasses
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from helpers import DASK_IMAGE, stopped, wait_until

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

    def run(self, secrets: list[dict[str, str]], command: list[str]) -> dict[str, Any]:
        """One task of a definition taking ``secrets``, running ``command``: once STOPPED."""
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
                    "image": DASK_IMAGE,
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
                "awsvpcConfiguration": {"subnets": [self.subnet], "assignPublicIp": "ENABLED"}
            },
        )["tasks"]
        return stopped(self.ecs, task["taskArn"])

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
    with LocalFargate() as aws:
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


def test_values_stay_out_of_describe_tasks_and_the_command_line(account):
    arn = _secret(account, "app/running", "never-shown-value")
    _allow_all_secrets(account)
    sleeper = ["python", "-c", "import time; time.sleep(600)"]
    register = account.ecs.register_task_definition(
        family="secrets-running",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        executionRoleArn=account.role_arn,
        containerDefinitions=[
            {
                "name": "main",
                "image": DASK_IMAGE,
                "command": sleeper,
                "secrets": [{"name": "SHOWN", "valueFrom": arn}],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    [task] = account.ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=register,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [account.subnet], "assignPublicIp": "ENABLED"}
        },
    )["tasks"]
    arn_task = task["taskArn"]

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
