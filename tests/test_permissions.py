"""IAM's policy simulator on the local Fargate, and `doctor` naming missing permissions.

Each test makes its own IAM user with access keys, and runs `starburst-dask doctor`
with them, as a user with those credentials would.
"""

import itertools
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from starburst_dask.cli import main

_names = itertools.count()


def printed_policy(*flags):
    result = CliRunner().invoke(main, ["iam-policy", *flags])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def without(document, action):
    """``document`` with ``action`` taken out of its statements."""
    changed = json.loads(json.dumps(document))
    for statement in changed["Statement"]:
        if isinstance(statement["Action"], list) and action in statement["Action"]:
            statement["Action"].remove(action)
    return changed


@pytest.fixture
def user(local_fargate):
    """A new IAM user (name, ARN, access keys) with no policy yet."""
    iam = local_fargate.client("iam")
    name = f"someone-{next(_names)}"
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "name": name,
        "arn": arn,
        "env": {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        },
    }


def put_policy(local_fargate, user, document, name="starburst-dask"):
    local_fargate.client("iam").put_user_policy(
        UserName=user["name"], PolicyName=name, PolicyDocument=json.dumps(document, indent=2)
    )


def doctor(user):
    result = CliRunner().invoke(main, ["doctor", "--json"], env=user["env"])
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    return result.exit_code, checks


def test_doctor_names_a_missing_permission_and_the_command_to_fix_it(local_fargate, user):
    put_policy(local_fargate, user, without(printed_policy(), "ecs:RunTask"))
    code, checks = doctor(user)
    assert code == 1
    check = checks["permissions"]
    assert check["status"] == "fail"
    assert "ecs:RunTask" in check["detail"] and user["arn"] in check["detail"]
    assert "starburst-dask iam-policy" in check["fix"] and "ecs:RunTask" in check["fix"]
    # Setup's actions are missing too, but only setup needs them: a warning.
    assert checks["setup permissions"]["status"] == "warn"
    assert "starburst-dask iam-policy --setup" in checks["setup permissions"]["fix"]


def test_doctor_passes_the_check_with_the_printed_policy(local_fargate, user):
    put_policy(local_fargate, user, printed_policy())
    _, checks = doctor(user)
    assert checks["permissions"]["status"] == "ok"
    assert checks["setup permissions"]["status"] == "warn"

    put_policy(local_fargate, user, printed_policy("--setup"))
    _, checks = doctor(user)
    assert checks["setup permissions"]["status"] == "ok"


def test_an_explicit_deny_wins_over_an_allow(local_fargate, user):
    put_policy(local_fargate, user, printed_policy())
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": "ecs:Stop*", "Resource": "*"}],
    }
    put_policy(local_fargate, user, deny, name="no-stopping")
    code, checks = doctor(user)
    assert code == 1
    assert "a policy denies ecs:StopTask" in checks["permissions"]["detail"]
    assert "remove the Deny of ecs:StopTask" in checks["permissions"]["fix"]


def test_doctor_checks_that_the_caller_may_pass_the_projects_roles(local_fargate, user):
    document = printed_policy()
    document["Statement"] = [s for s in document["Statement"] if s["Action"] != "iam:PassRole"]
    put_policy(local_fargate, user, document)
    code, checks = doctor(user)
    assert code == 1
    assert "no policy allows iam:PassRole" in checks["permissions"]["detail"]


def test_an_assumed_role_is_checked_as_its_role(local_fargate):
    iam = local_fargate.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(
        RoleName="operator", Path="/team/", AssumeRolePolicyDocument=json.dumps(trust)
    )["Role"]
    iam.put_role_policy(
        RoleName="operator",
        PolicyName="starburst-dask",
        PolicyDocument=json.dumps(without(printed_policy(), "ecs:StopTask")),
    )
    credentials = local_fargate.client("sts").assume_role(
        RoleArn=role["Arn"], RoleSessionName="alice"
    )["Credentials"]
    code, checks = doctor(
        {
            "env": {
                "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                "AWS_SESSION_TOKEN": credentials["SessionToken"],
            }
        }
    )
    assert code == 1
    assert checks["permissions"]["detail"] == (
        "arn:aws:iam::123456789012:role/team/operator: no policy allows ecs:StopTask"
    )


def test_a_caller_who_may_not_simulate_gets_a_warning_not_a_failure(local_fargate, user):
    put_policy(local_fargate, user, without(printed_policy(), "iam:SimulatePrincipalPolicy"))
    _, checks = doctor(user)
    check = checks["permissions"]
    assert check["status"] == "warn"
    assert "not checked" in check["detail"] and "AccessDenied" in check["detail"]
    assert "iam:SimulatePrincipalPolicy" in check["fix"]


def test_the_root_user_needs_no_check(local_fargate):
    _, checks = doctor({"env": local_fargate.env})
    assert checks["permissions"]["status"] == "ok"
    assert "root" in checks["permissions"]["detail"]


def test_the_simulator_answers_in_aws_shape(local_fargate, user):
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Read",
                "Effect": "Allow",
                "Action": ["ecs:Describe*", "ECS:LIST?ASKS"],
                "Resource": "*",
            },
            {"Effect": "Deny", "Action": "ecs:DescribeTasks", "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": "arn:aws:iam::*:role/r-*",
                "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            },
        ],
    }
    put_policy(local_fargate, user, policy)
    iam = local_fargate.client("iam")
    answer = iam.simulate_principal_policy(
        PolicySourceArn=user["arn"],
        ActionNames=["ecs:DescribeClusters", "ecs:ListTasks", "ecs:DescribeTasks", "ecs:RunTask"],
    )
    assert answer["IsTruncated"] is False
    results = {r["EvalActionName"]: r for r in answer["EvaluationResults"]}
    assert {a: r["EvalDecision"] for a, r in results.items()} == {
        "ecs:DescribeClusters": "allowed",
        "ecs:ListTasks": "allowed",
        "ecs:DescribeTasks": "explicitDeny",
        "ecs:RunTask": "implicitDeny",
    }
    assert {r["EvalResourceName"] for r in results.values()} == {"*"}
    [allowing] = results["ecs:DescribeClusters"]["MatchedStatements"]
    assert allowing["SourcePolicyId"] == "starburst-dask"
    assert allowing["SourcePolicyType"] == "user"
    assert allowing["StartPosition"]["Line"] < allowing["EndPosition"]["Line"]
    [denying] = results["ecs:DescribeTasks"]["MatchedStatements"]  # the deny alone
    assert denying["StartPosition"]["Line"] > allowing["EndPosition"]["Line"]
    assert results["ecs:RunTask"]["MatchedStatements"] == []

    # A condition holds only with its context; the resource must match.
    role = "arn:aws:iam::123456789012:role/r-1"
    passed = {
        "ContextKeyName": "iam:PassedToService",
        "ContextKeyValues": ["ecs-tasks.amazonaws.com"],
        "ContextKeyType": "string",
    }
    [result] = iam.simulate_principal_policy(
        PolicySourceArn=user["arn"],
        ActionNames=["iam:PassRole"],
        ResourceArns=[role],
        ContextEntries=[passed],
    )["EvaluationResults"]
    assert result["EvalDecision"] == "allowed"
    assert result["ResourceSpecificResults"][0]["EvalResourceDecision"] == "allowed"
    [result] = iam.simulate_principal_policy(
        PolicySourceArn=user["arn"], ActionNames=["iam:PassRole"], ResourceArns=[role]
    )["EvaluationResults"]
    assert result["EvalDecision"] == "implicitDeny"
    assert result["ResourceSpecificResults"][0]["MissingContextValues"] == ["iam:PassedToService"]
    [result] = iam.simulate_principal_policy(
        PolicySourceArn=user["arn"],
        ActionNames=["iam:PassRole"],
        ResourceArns=["arn:aws:iam::123456789012:role/other"],
        ContextEntries=[passed],
    )["EvaluationResults"]
    assert result["EvalDecision"] == "implicitDeny"


def test_the_simulator_pages_and_refuses_as_aws_does(local_fargate, user):
    iam = local_fargate.client("iam")
    actions = [f"ecs:Action{i}" for i in range(5)]
    first = iam.simulate_principal_policy(
        PolicySourceArn=user["arn"], ActionNames=actions, MaxItems=2
    )
    assert first["IsTruncated"] is True and len(first["EvaluationResults"]) == 2
    pages = iam.get_paginator("simulate_principal_policy").paginate(
        PolicySourceArn=user["arn"], ActionNames=actions, PaginationConfig={"PageSize": 2}
    )
    assert [r["EvalActionName"] for p in pages for r in p["EvaluationResults"]] == actions

    with pytest.raises(ClientError) as unknown:
        iam.simulate_principal_policy(
            PolicySourceArn="arn:aws:iam::123456789012:user/nobody", ActionNames=["ecs:RunTask"]
        )
    assert unknown.value.response["Error"]["Code"] == "NoSuchEntity"
    with pytest.raises(ClientError) as session:
        iam.simulate_principal_policy(
            PolicySourceArn="arn:aws:sts::123456789012:assumed-role/r/s",
            ActionNames=["ecs:RunTask"],
        )
    assert session.value.response["Error"]["Code"] == "InvalidInput"

    as_user = boto3.client(
        "iam",
        aws_access_key_id=user["env"]["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=user["env"]["AWS_SECRET_ACCESS_KEY"],
    )
    with pytest.raises(ClientError) as denied:  # no policy allows it to simulate
        as_user.simulate_principal_policy(PolicySourceArn=user["arn"], ActionNames=actions)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "iam:SimulatePrincipalPolicy" in denied.value.response["Error"]["Message"]
