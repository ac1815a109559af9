"""The IAM policy `starburst-dask iam-policy` prints allows every call the project makes.

Every local Fargate of the suite records the AWS operations the project's own clients
sent (their user agent says ``app/starburst-dask``); this module runs last (in a run with
workers, once the other tests have finished in every worker) and checks each against the
printed policy, and against AWS's models for deprecated operations.
"""

import json
import os
from pathlib import Path

import botocore.session
import pytest
from click.testing import CliRunner
from helpers import SUITE_DONE_VAR, wait_until

from starburst_dask.admin.policy import allows, iam_action
from starburst_dask.cli import main
from starburst_dask.images.builders import CODEBUILD_ROLE
from starburst_dask.local.server import AUDIT_VAR


def recorded_calls():
    path = os.environ[AUDIT_VAR]
    if not os.path.exists(path):
        return set()
    with open(path) as f:
        return {(c["service"], c["operation"]) for c in map(json.loads, f)}


@pytest.fixture(scope="module")
def calls():
    if os.environ.get(SUITE_DONE_VAR):  # the other tests may still run in other workers
        wait_until(lambda: os.path.exists(os.environ[SUITE_DONE_VAR]), timeout=540, interval=1)
    found = recorded_calls()
    if not found:
        pytest.skip("no calls recorded: run this module with the whole suite")
    return found


def printed_policy(*flags):
    result = CliRunner().invoke(main, ["iam-policy", *flags])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_policy_allows_every_call_the_project_made(calls):
    document = printed_policy("--setup")
    actions = {iam_action(s, o) for s, o in calls}
    assert sorted(a for a in actions if not allows(document, a)) == []
    # The suite exercised the main paths: clusters, setup, quota and images.
    assert {
        "ecs:RunTask",
        "ecs:CreateCluster",
        "servicequotas:GetServiceQuota",
        "iam:CreateRole",
    } <= actions


def test_the_project_calls_no_deprecated_operation(calls):
    session = botocore.session.get_session()
    deprecated = sorted(
        f"{s}:{o}" for s, o in calls if session.get_service_model(s).operation_model(o).deprecated
    )
    assert deprecated == []


def test_pass_role_is_limited_to_the_projects_roles():
    document = printed_policy()
    passes = [s for s in document["Statement"] if s["Action"] == "iam:PassRole"]
    assert passes and all(s["Resource"] != "*" for s in passes)
    # Each to the one service its roles are for: the tasks' to ECS; by default (images
    # of the user's environment) also the image build role to CodeBuild.
    assert sorted(s["Condition"]["StringEquals"]["iam:PassedToService"] for s in passes) == [
        "codebuild.amazonaws.com",
        "ecs-tasks.amazonaws.com",
    ]
    assert [s["Resource"] for s in passes if "codebuild" in str(s["Condition"])] == [
        f"arn:aws:iam::*:role/{CODEBUILD_ROLE}"
    ]
    only_tasks = [
        s for s in printed_policy("--no-images")["Statement"] if "PassRole" in s["Action"]
    ]
    assert [s["Sid"] for s in only_tasks] == ["PassTaskRoles"]
    assert not allows(document, "iam:CreateRole")  # setup's, only with --setup


def test_the_docs_carry_the_policy_the_command_prints():
    page = (Path(__file__).parents[1] / "docs" / "iam-policy.md").read_text()
    shown = page.split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(shown) == printed_policy("--setup")
