"""Requests that break their service's model, refused by the local Fargate as AWS refuses them.

Each case is a request botocore's client-side validation lets through (it checks required
members, types and ``min``, not ``max``, ``pattern`` or ``enum``; where a case breaks one of
those, only that case's client has validation off, as another SDK would send it) and the
same request with a valid value, which succeeds.
"""

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from starburst_dask import fargate
from starburst_dask.aws.names import trust_policy

TRUST = json.dumps(trust_policy("ecs-tasks.amazonaws.com"))
TAGS_51 = [{"key": f"k{n}", "value": "v"} for n in range(51)]


@dataclass
class Case:
    """One request, broken and valid, and what AWS answers the broken one."""

    id: str
    service: str
    operation: str
    bad: dict[str, Any]
    good: dict[str, Any]
    code: str
    says: list[str]
    client_checks: bool = True  # False: botocore would refuse it (another SDK would not)
    base: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "ecs-create-cluster-tag-key",
        "ecs",
        "create_cluster",
        {"tags": [{"key": "k" * 129, "value": "v"}]},
        {"tags": [{"key": "team", "value": "v"}]},
        "InvalidParameterException",
        [
            "1 validation error detected: Value 'kkk",
            "at 'tags.1.member.key'",
            "Member must have length less than or equal to 128",
        ],
        base={"clusterName": "validation"},
    ),
    Case(
        "ecs-create-cluster-51-tags",
        "ecs",
        "create_cluster",
        {"tags": TAGS_51},
        {"tags": TAGS_51[:50]},
        "InvalidParameterException",
        [
            "at 'tags' failed to satisfy constraint",
            "Member must have length less than or equal to 50",
        ],
        base={"clusterName": "validation"},
    ),
    Case(
        "ecs-list-tasks-enum",
        "ecs",
        "list_tasks",
        {"desiredStatus": "ASLEEP"},
        {"desiredStatus": "STOPPED"},
        "InvalidParameterException",
        [
            "Value 'ASLEEP' at 'desiredStatus'",
            "Member must satisfy enum value set: [RUNNING, PENDING, STOPPED]",
        ],
        base={"cluster": "starburst-dask"},
    ),
    Case(
        "ecs-task-definition-missing",
        "ecs",
        "describe_task_definition",
        {},
        {"taskDefinition": "starburst-validation"},
        "InvalidParameterException",
        ["Value null at 'taskDefinition' failed to satisfy constraint: Member must not be null"],
        client_checks=False,
    ),
    Case(
        "ec2-security-group-tag-type",
        "ec2",
        "create_security_group",
        {"TagSpecifications": [{"ResourceType": "sg", "Tags": [{"Key": "a", "Value": "b"}]}]},
        {
            "TagSpecifications": [
                {"ResourceType": "security-group", "Tags": [{"Key": "a", "Value": "b"}]}
            ]
        },
        "InvalidParameterValue",
        [
            "Value (sg) for parameter TagSpecification.1.ResourceType is invalid",
            "Member must satisfy enum value set: [",
            "security-group",
        ],
        base={"Description": "validation", "GroupName": "validation-tagged"},
    ),
    Case(
        "ec2-security-group-missing-name",
        "ec2",
        "create_security_group",
        {},
        {"GroupName": "validation-named"},
        "MissingParameter",
        ["The request must contain the parameter GroupName"],
        client_checks=False,
        base={"Description": "validation"},
    ),
    Case(
        "ec2-describe-security-groups-max-results",
        "ec2",
        "describe_security_groups",
        {"MaxResults": 1001},
        {"MaxResults": 1000},
        "InvalidParameterValue",
        [
            "Value (1001) for parameter MaxResults is invalid",
            "Member must have value less than or equal to 1000",
        ],
    ),
    Case(
        "iam-role-name-length",
        "iam",
        "create_role",
        {"RoleName": "r" * 65},
        {"RoleName": "r" * 64},
        "ValidationError",
        [
            "1 validation error detected: Value 'rrr",
            "at 'roleName'",
            "Member must have length less than or equal to 64",
        ],
        base={"AssumeRolePolicyDocument": TRUST},
    ),
    Case(
        "iam-role-name-pattern",
        "iam",
        "create_role",
        {"RoleName": "team role"},
        {"RoleName": "team-role"},
        "ValidationError",
        [
            "Value 'team role' at 'roleName'",
            "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
        ],
        base={"AssumeRolePolicyDocument": TRUST},
    ),
    Case(
        "sts-session-name-min",
        "sts",
        "assume_role",
        {"RoleSessionName": "s"},
        {"RoleSessionName": "session"},
        "ValidationError",
        ["Value 's' at 'roleSessionName'", "Member must have length greater than or equal to 2"],
        client_checks=False,
        base={"RoleArn": "arn:aws:iam::123456789012:role/starburst-dask-task"},
    ),
    Case(
        "logs-group-name-pattern",
        "logs",
        "create_log_group",
        {"logGroupName": "my logs!"},
        {"logGroupName": "/validation/logs"},
        "InvalidParameterException",
        [
            "1 validation error detected: Value 'my logs!' at 'logGroupName'",
            "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+",
        ],
    ),
    Case(
        "logs-group-name-empty",
        "logs",
        "describe_log_groups",
        {"logGroupNamePrefix": ""},
        {"logGroupNamePrefix": "/starburst"},
        "InvalidParameterException",
        ["Value '' at 'logGroupNamePrefix'", "Member must have length greater than or equal to 1"],
        client_checks=False,
    ),
    Case(
        "service-quotas-quota-code",
        "service-quotas",
        "get_service_quota",
        {"QuotaCode": "L-" + "X" * 127},
        {"QuotaCode": fargate.QUOTA_CODES["FARGATE"]},
        "ValidationException",
        [
            "at 'quotaCode' failed to satisfy constraint",
            "Member must have length less than or equal to 128",
        ],
        base={"ServiceCode": fargate.QUOTA_SERVICE_CODE},
    ),
    Case(
        "ecr-repository-name-min",
        "ecr",
        "create_repository",
        {"repositoryName": "a"},
        {"repositoryName": "validation-repo"},
        "InvalidParameterException",
        [
            "Invalid parameter at 'repositoryName' failed to satisfy constraint: "
            "'must have length greater than or equal to 2'"
        ],
        client_checks=False,
    ),
    Case(
        "cloudwatch-query-id-length",
        "cloudwatch",
        "get_metric_data",
        {"MetricDataQueries": [{"Id": "q" * 256, "Expression": "SUM(METRICS())"}]},
        {"MetricDataQueries": [{"Id": "q", "Expression": "SUM(METRICS())"}]},
        "ValidationError",
        ["at 'metricDataQueries.1.member.id'", "Member must have length less than or equal to 255"],
        base={"StartTime": 0, "EndTime": 60},
    ),
]


def call(aws, case, params, validate):
    client = aws.client(case.service, config=Config(parameter_validation=validate))
    return getattr(client, case.operation)(**case.base, **params)


@pytest.fixture(scope="module")
def task_definition(local_fargate):
    local_fargate.client("ecs").register_task_definition(
        family="starburst-validation",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "main", "image": "python"}],
    )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_model_violation_answered_as_the_service_does(local_fargate, task_definition, case):
    with pytest.raises(ClientError) as refused:
        call(local_fargate, case, case.bad, validate=case.client_checks)
    error = refused.value.response["Error"]
    assert error["Code"] == case.code
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    for words in case.says:
        assert words in error["Message"]
    answer = call(local_fargate, case, case.good, validate=True)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_every_violation_listed(local_fargate):
    iam = local_fargate.client("iam", config=Config(parameter_validation=False))
    with pytest.raises(ClientError) as refused:
        iam.create_role(RoleName="r" * 65, AssumeRolePolicyDocument=TRUST, Path="no-slash")
    message = refused.value.response["Error"]["Message"]
    assert message.startswith("2 validation errors detected: ")
    assert "at 'roleName'" in message and "at 'path'" in message
    assert "; " in message


def test_refused_request_changes_nothing(local_fargate):
    logs = local_fargate.client("logs")
    with pytest.raises(ClientError):
        logs.create_log_group(logGroupName="never created!")
    names = [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
    assert "never created!" not in names


def test_wrong_type_is_a_serialization_error(local_fargate):
    ecs = local_fargate.client("ecs", config=Config(parameter_validation=False))
    with pytest.raises(ClientError) as refused:
        ecs.list_tasks(cluster="starburst-dask", maxResults="ten")
    assert refused.value.response["Error"]["Code"] == "SerializationException"
    assert "maxResults" in refused.value.response["Error"]["Message"]
