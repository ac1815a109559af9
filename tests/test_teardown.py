"""AWS refuses to delete an ECS cluster whose tasks are not stopped; teardown refuses
first, naming them, and deletes nothing. On a fresh local Fargate that setup prepared."""

import dask.config
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from helpers import PYTHON_IMAGE, private_dask_config, wait_until

from starburst_dask.admin.setup import setup
from starburst_dask.cli import main
from starburst_dask.ecs.tasks import TAG_CLUSTER, TAG_ROLE
from starburst_dask.local import LocalFargate

ECS_CLUSTER = "starburst-dask"
SLEEP = ["python", "-c", "import time; time.sleep(600)"]


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    """A local Fargate set up by ``setup``, its dask config in a directory of our own."""
    directory = tmp_path_factory.mktemp("dask-config")
    with private_dask_config(directory), LocalFargate(prepare=False) as fargate:
        setup(allow_cidrs=["127.0.0.1/32"])
        dask.config.refresh()
        yield fargate


def run_sleeper(aws, cluster, **kwargs):
    ecs = aws.client("ecs")
    definition = ecs.register_task_definition(
        family="not-starburst",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {"name": "app", "image": PYTHON_IMAGE, "essential": True, "command": SLEEP}
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    return ecs.run_task(
        cluster=cluster,
        taskDefinition=definition,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": dask.config.get("starburst.subnets")}
        },
        **kwargs,
    )["tasks"][0]["taskArn"]


def status(aws, cluster, arn):
    return aws.client("ecs").describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]["lastStatus"]


def everything(aws):
    """What teardown could delete, as AWS describes it."""
    ecs, iam, ec2 = aws.client("ecs"), aws.client("iam"), aws.client("ec2")
    [cluster] = ecs.describe_clusters(clusters=[ECS_CLUSTER])["clusters"]
    return {
        "cluster": cluster["status"],
        "roles": sorted(r["RoleName"] for r in iam.list_roles()["Roles"]),
        "groups": sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]),
        "logs": [g["logGroupName"] for g in aws.client("logs").describe_log_groups()["logGroups"]],
        "repositories": [
            r["repositoryName"] for r in aws.client("ecr").describe_repositories()["repositories"]
        ],
    }


def test_delete_cluster_with_a_task_not_stopped_is_refused_as_on_aws(aws):
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName="busy")
    arn = run_sleeper(aws, "busy")
    with pytest.raises(ecs.exceptions.ClusterContainsTasksException) as refused:
        ecs.delete_cluster(cluster="busy")
    assert refused.value.response["Error"]["Message"] == (
        "The Cluster cannot be deleted while Tasks are active."
    )
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert ecs.describe_clusters(clusters=["busy"])["clusters"][0]["status"] == "ACTIVE"

    ecs.stop_task(cluster="busy", task=arn, reason="test")
    wait_until(lambda: status(aws, "busy", arn) == "STOPPED", timeout=60)
    assert ecs.delete_cluster(cluster="busy")["cluster"]["status"] == "INACTIVE"


def test_delete_cluster_with_a_service_is_refused_as_on_aws(aws):
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName="served")
    ecs.create_service(cluster="served", serviceName="web", desiredCount=0)
    with pytest.raises(ClientError) as refused:
        ecs.delete_cluster(cluster="served")
    assert refused.value.response["Error"] == {
        "Code": "ClusterContainsServicesException",
        "Message": "The Cluster cannot be deleted while Services are active.",
    }
    ecs.delete_service(cluster="served", service="web")
    assert ecs.delete_cluster(cluster="served")["cluster"]["status"] == "INACTIVE"


def test_teardown_stops_at_a_cluster_aws_refuses_to_delete_and_deletes_nothing_else(aws):
    ecs = aws.client("ecs")
    ecs.create_service(cluster=ECS_CLUSTER, serviceName="web", desiredCount=0)
    before = everything(aws)
    try:
        result = CliRunner().invoke(main, ["teardown", "--yes"])
        assert result.exit_code == 1
        assert "The Cluster cannot be deleted while Services are active." in result.output
        assert "teardown deleted nothing" in result.output
        assert everything(aws) == before
    finally:
        ecs.delete_service(cluster=ECS_CLUSTER, service="web")


def test_teardown_refuses_a_cluster_others_use_naming_the_tasks_and_deletes_nothing(aws):
    ecs = aws.client("ecs")
    foreign = run_sleeper(aws, ECS_CLUSTER, startedBy="nightly-job")
    ours = run_sleeper(
        aws,
        ECS_CLUSTER,
        tags=[{"key": TAG_CLUSTER, "value": "gone"}, {"key": TAG_ROLE, "value": "worker"}],
    )
    before = everything(aws)
    try:
        result = CliRunner().invoke(main, ["teardown", "--yes"])
        assert result.exit_code == 1
        for arn in (foreign, ours):
            assert arn.rsplit("/", 1)[-1] in result.output
        assert "startedBy nightly-job, group family:not-starburst" in result.output
        assert "starburst-dask cluster gone (worker)" in result.output
        assert "starburst-dask cleanup" in result.output and "--cluster gone" in result.output
        assert "aws ecs stop-task" in result.output
        assert everything(aws) == before  # nothing deleted, the config file neither
        assert dask.config.get("starburst.ecs-cluster") == ECS_CLUSTER
        assert {status(aws, ECS_CLUSTER, a) for a in (foreign, ours)} <= {"PENDING", "RUNNING"}

        stopped = CliRunner().invoke(main, ["cleanup", "--cluster", "gone", "--yes"])
        assert stopped.exit_code == 0 and "Stopped 1 tasks" in stopped.output
        still = CliRunner().invoke(main, ["teardown", "--yes"])  # the foreign task runs
        assert still.exit_code == 1 and foreign.rsplit("/", 1)[-1] in still.output
        assert ours.rsplit("/", 1)[-1] not in still.output
        assert everything(aws)["cluster"] == "ACTIVE"
    finally:
        ecs.stop_task(cluster=ECS_CLUSTER, task=foreign, reason="test over")
    # Tasks still stopping are waited for; then everything setup made goes.
    done = CliRunner().invoke(main, ["teardown", "--yes"])
    assert done.exit_code == 0, done.output
    assert {status(aws, ECS_CLUSTER, a) for a in (foreign, ours)} == {"STOPPED"}
    after = everything(aws)
    assert after["cluster"] == "INACTIVE" and after["logs"] == [] and after["repositories"] == []
