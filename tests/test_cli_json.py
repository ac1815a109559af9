"""``--json`` of cleanup, teardown and image ls/build/render: parsed from stdout, checked
against what the AWS API reports. On a fresh local Fargate that setup prepared; teardown
last, as it deletes what setup made."""

import json

import dask.config
import pytest
from click.testing import CliRunner
from helpers import LOCK, PYTHON_IMAGE, private_dask_config, put_image, wait_until

from starburst_dask.admin.setup import setup
from starburst_dask.cli import main
from starburst_dask.ecs.tasks import TAG_CLUSTER, TAG_ROLE
from starburst_dask.images.context import render
from starburst_dask.images.lockfile import read_lock
from starburst_dask.local import LocalFargate

ECS_CLUSTER = "starburst-dask"


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    directory = tmp_path_factory.mktemp("dask-config")
    with private_dask_config(directory), LocalFargate(prepare=False) as fargate:
        setup(allow_cidrs=["127.0.0.1/32"])
        dask.config.refresh()
        yield fargate


def cli(*args):
    """The command's JSON from stdout (nothing else is there), and its exit code."""
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_image_commands(aws, tmp_path):
    ecr = aws.client("ecr")
    ecr.create_repository(repositoryName="listed")
    tag = render(read_lock(LOCK), "linux-64").tag
    put_image(ecr, "listed", tag)
    [described] = ecr.describe_images(repositoryName="listed")["imageDetails"]

    listed = cli("image", "ls", "--repository", "listed")
    assert listed == {
        "repository": "listed",
        "region": aws.region,
        "images": [
            {
                "tag": tag,
                "digest": described["imageDigest"],
                "size": described.get("imageSizeInBytes"),
                "pushed": described["imagePushedAt"].isoformat(),
            }
        ],
    }

    built = cli("image", "build", str(LOCK), "--repository", "listed")
    registry = f"123456789012.dkr.ecr.{aws.region}.amazonaws.com"  # moto's account
    assert built["uri"] == f"{registry}/listed:{tag}" and built["tag"] == tag
    assert built["built"] is False and built["builder"] is None  # ECR had it
    assert set(built["versions"]) >= {"python", "dask", "distributed"}

    out = tmp_path / "context"
    rendered = cli("image", "render", str(LOCK), "-o", str(out))
    assert rendered["directory"] == str(out) and rendered["tag"] == tag
    assert rendered["platform"] == "linux-64" and rendered["docker_platform"] == "linux/amd64"
    assert rendered["files"] == sorted(p.name for p in out.iterdir())


def run_tagged(aws, cluster, role):
    ecs = aws.client("ecs")
    definition = ecs.register_task_definition(
        family="tagged-sleeper",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": "app",
                "image": PYTHON_IMAGE,
                "command": ["python", "-c", "import time; time.sleep(600)"],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    return ecs.run_task(
        cluster=ECS_CLUSTER,
        taskDefinition=definition,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": dask.config.get("starburst.subnets")}
        },
        tags=[{"key": TAG_CLUSTER, "value": cluster}, {"key": TAG_ROLE, "value": role}],
    )["tasks"][0]["taskArn"]


def test_cleanup(aws):
    ecs = aws.client("ecs")
    arn = run_tagged(aws, "left-behind", "worker")

    dry = cli("cleanup", "--cluster", "left-behind")
    assert dry["dry_run"] is True and dry["region"] == aws.region
    [cluster] = dry["clusters"]
    assert cluster["name"] == "left-behind" and cluster["ecs_cluster"] == ECS_CLUSTER
    assert cluster["task_arns"] == [arn] and cluster["tasks"]["worker"] == 1
    assert dry["stopped_task_arns"] == [] and dry["problems"] == []
    [task] = ecs.describe_tasks(cluster=ECS_CLUSTER, tasks=[arn])["tasks"]
    assert task["desiredStatus"] == "RUNNING"  # a dry run stops nothing

    done = cli("cleanup", "--cluster", "left-behind", "--yes")
    assert done["dry_run"] is False and done["stopped_task_arns"] == [arn]
    [task] = ecs.describe_tasks(cluster=ECS_CLUSTER, tasks=[arn])["tasks"]
    assert task["desiredStatus"] == "STOPPED"
    assert task["stoppedReason"] == "starburst-dask cleanup"

    nothing = cli("cleanup")
    assert (nothing["clusters"], nothing["leftovers"]) == ([], [])


def test_teardown_last(aws):
    ecs = aws.client("ecs")
    wait_until(lambda: not ecs.list_tasks(cluster=ECS_CLUSTER)["taskArns"], timeout=120)
    dry = cli("teardown")  # with --json: a dry run, nothing asked
    assert dry["dry_run"] is True and dry["region"] == aws.region
    by_kind = {(r["kind"], r["name"]): r for r in dry["resources"]}
    cluster = by_kind[("ECS cluster", ECS_CLUSTER)]
    assert cluster["action"] == "delete" and cluster["result"] is None
    [described] = ecs.describe_clusters(clusters=[ECS_CLUSTER])["clusters"]
    assert described["status"] == "ACTIVE"  # nothing deleted

    done = cli("teardown", "--yes")
    assert done["dry_run"] is False
    deleted = {(r["kind"], r["name"]) for r in done["resources"] if r["result"] == "deleted"}
    assert deleted == {(r["kind"], r["name"]) for r in dry["resources"] if r["action"] == "delete"}
    [described] = ecs.describe_clusters(clusters=[ECS_CLUSTER])["clusters"]
    assert described["status"] == "INACTIVE"
    roles = {r["RoleName"] for r in aws.client("iam").list_roles()["Roles"]}
    assert not {name for kind, name in deleted if kind == "IAM role"} & roles
