"""Tasks run their image, not the client's environment: what they can import, what pulls.

Everything is observed through the AWS API (a task's exit code, stopCode and
stoppedReason, its CloudWatch log) or in a dask client's results.
"""

import contextlib

import boto3
import dask
import pytest
from botocore.exceptions import ClientError
from distributed import Client
from helpers import DASK_IMAGE, PYTHON, PYTHON_IMAGE, put_image, stopped

from starburst_dask import FargateCluster

CLUSTER = "starburst-dask"
LOG_GROUP = "/starburst-dask"
OTHER_PYTHON = "3.12" if PYTHON != "3.12" else "3.13"
FAST = {"poll_interval": 0.5}


@pytest.fixture
def ecs(local_fargate):
    return boto3.client("ecs")


def run(ecs, image, code, environment=None):
    """One task of ``image`` running ``python -c code``, on a public subnet; its ARN."""
    container = {
        "name": "main",
        "image": image,
        "command": ["python", "-c", code],
        "environment": [{"name": k, "value": v} for k, v in (environment or {}).items()],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": LOG_GROUP,
                "awslogs-stream-prefix": "images",
                "awslogs-region": "us-east-1",
            },
        },
    }
    # awslogs on Fargate needs the execution role (prepare() made it).
    role = boto3.client("iam").get_role(RoleName="starburst-dask-execution")["Role"]["Arn"]
    definition = ecs.register_task_definition(
        family="images",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[container],
        executionRoleArn=role,
    )["taskDefinition"]["taskDefinitionArn"]
    subnet = boto3.client("ec2").describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}]
    )["Subnets"][0]["SubnetId"]
    response = ecs.run_task(
        cluster=CLUSTER,
        taskDefinition=definition,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [subnet], "assignPublicIp": "ENABLED"}
        },
    )
    assert response["failures"] == []
    return response["tasks"][0]["taskArn"]


def log(arn):
    """The task's CloudWatch log lines."""
    stream = f"images/main/{arn.rsplit('/', 1)[1]}"
    try:
        events = boto3.client("logs").get_log_events(logGroupName=LOG_GROUP, logStreamName=stream)[
            "events"
        ]
    except ClientError:
        return []
    return [e["message"] for e in events]


# -- what a task can import ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "code", "environment", "missing"),
    [
        # daskdev/dask has dask and its usual companions, not starburst-dask or xarray.
        (DASK_IMAGE, "import dask, distributed, numpy, pandas, cloudpickle, yaml", None, None),
        (DASK_IMAGE, "import starburst_dask", None, "starburst_dask"),
        (DASK_IMAGE, "import starburst_dask.demo", None, "starburst_dask"),
        (DASK_IMAGE, "import xarray", None, "xarray"),
        (DASK_IMAGE, "import moto", None, "moto"),
        # prepare.sh's EXTRA_PIP_PACKAGES: what is installed here stands for its install.
        (DASK_IMAGE, "import xarray", {"EXTRA_PIP_PACKAGES": "xarray>=2025.1"}, None),
        (DASK_IMAGE, "import xarray", {"EXTRA_CONDA_PACKAGES": "-c conda-forge xarray"}, None),
        # Docker's python image: the standard library and pip, nothing of dask.
        (PYTHON_IMAGE, "import json, sqlite3, pip", None, None),
        (f"python:{PYTHON}-slim", "import dask", None, "dask"),
    ],
)
def test_a_task_imports_what_its_image_contains(ecs, image, code, environment, missing):
    arn = run(ecs, image, code, environment)
    task = stopped(ecs, arn)
    assert task["stopCode"] == "EssentialContainerExited"
    if missing is None:
        assert task["containers"][0]["exitCode"] == 0, log(arn)
    else:
        assert task["containers"][0]["exitCode"] == 1
        lines = log(arn)
        assert f"ModuleNotFoundError: No module named '{missing}'" in lines, lines


def test_an_absent_module_looks_absent_to_probes(ecs):
    code = (
        "import importlib.util, importlib.metadata as m; "
        "assert importlib.util.find_spec('starburst_dask') is None; "
        "assert importlib.util.find_spec('xarray') is None; "
        "names = {d.metadata['Name'].lower() for d in m.distributions()}; "
        "assert 'dask' in names and 'xarray' not in names, names; print('absent')"
    )
    arn = run(ecs, DASK_IMAGE, code)
    assert stopped(ecs, arn)["containers"][0]["exitCode"] == 0, log(arn)
    assert "absent" in log(arn)


ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def pushed(repository, tag):
    """An image in the local account's ECR under ``tag``, as a build pushes one."""
    ecr = boto3.client("ecr")
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repository)
    put_image(ecr, repository, tag)
    return f"{ECR}/{repository}:{tag}"


@pytest.mark.parametrize(
    ("code", "missing"),
    [
        ("import dask, distributed", None),
        ("import starburst_dask", "starburst_dask"),
    ],
)
def test_an_ecr_image_built_by_the_project_has_dask_and_distributed(ecs, code, missing):
    image = pushed("built", f"{dask.__version__}-py{PYTHON}-0123456789abcdef")
    arn = run(ecs, image, code)
    task = stopped(ecs, arn)
    assert task["containers"][0]["exitCode"] == (1 if missing else 0), log(arn)
    if missing:
        assert f"ModuleNotFoundError: No module named '{missing}'" in log(arn)


# -- pulls --------------------------------------------------------------------------------

NOT_FOUND = (
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
    "failed to resolve ref {ref}: {ref}: not found"
)
NO_REPOSITORY = (
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
    "failed to resolve ref {ref}: pull access denied, repository does not exist "
    "or may require authorization: server message: insufficient_scope: "
    "authorization failed"
)


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("daskdev/dask:no-such-tag", NOT_FOUND.format(ref="docker.io/daskdev/dask:no-such-tag")),
        (
            f"daskdev/dask:{dask.__version__}-py2.7",
            NOT_FOUND.format(ref=f"docker.io/daskdev/dask:{dask.__version__}-py2.7"),
        ),
        ("ghcr.io/dask/dask:nightly", NOT_FOUND.format(ref="ghcr.io/dask/dask:nightly")),
        (
            "no-such-user/no-such-image:1.0",
            NO_REPOSITORY.format(ref="docker.io/no-such-user/no-such-image:1.0"),
        ),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/absent:1",
            NOT_FOUND.format(ref="123456789012.dkr.ecr.us-east-1.amazonaws.com/absent:1"),
        ),
    ],
)
def test_an_image_that_does_not_exist_fails_to_pull_as_on_aws(ecs, image, reason):
    arn = run(ecs, image, "print('ran')")
    task = stopped(ecs, arn)
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"] == reason
    assert "startedAt" not in task
    assert log(arn) == []  # nothing ran


@pytest.mark.parametrize(
    ("image", "environment", "says"),
    [
        (f"daskdev/dask:{dask.__version__}-py{OTHER_PYTHON}", None, f"has Python {OTHER_PYTHON}"),
        (f"daskdev/dask:2020.1.0-py{PYTHON}", None, "has dask 2020.1.0"),
        (f"python:{OTHER_PYTHON}", None, f"has Python {OTHER_PYTHON}"),
        (
            f"{ECR}/built:{dask.__version__}-py{OTHER_PYTHON}-0123456789abcdef",
            None,
            f"has Python {OTHER_PYTHON}",
        ),
        (f"daskdev/dask@sha256:{'c' * 64}", None, "pinned by digest"),
        (
            DASK_IMAGE,
            {"EXTRA_PIP_PACKAGES": "no-such-package-here"},
            "EXTRA_PIP_PACKAGES names 'no-such-package-here', which is not installed here",
        ),
    ],
)
def test_an_image_the_local_fargate_cannot_stand_for_fails_plainly(ecs, image, environment, says):
    if image.startswith(ECR):
        pushed("built", image.rpartition(":")[2])
    arn = run(ecs, image, "print('ran')", environment)
    task = stopped(ecs, arn)
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith("LocalFargateImageError: ")
    assert says in task["stoppedReason"]
    assert log(arn) == []


# -- a dask cluster on daskdev/dask -------------------------------------------------------


def test_a_dask_worker_on_the_dask_image_cannot_import_the_client_package(local_fargate):
    # Defined here, so cloudpickle sends them by value: this test module is not in the image.
    def uses_starburst():
        import starburst_dask

        return starburst_dask.__name__

    def uses_pandas():
        import pandas as pd

        return int(pd.Series([1, 2, 3]).sum())

    with (
        FargateCluster(n_workers=1, image=DASK_IMAGE, **FAST) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(1, timeout=120)
        assert client.submit(uses_pandas).result() == 6
        with pytest.raises(ModuleNotFoundError, match="No module named 'starburst_dask'"):
            client.submit(uses_starburst).result()


# -- images the local CodeBuild built: exactly their lock ------------------------------


def _built_image(local_fargate, repository, extra=()):
    """An image of a pip lock of dask and distributed (and ``extra``: name, version),
    built through the local CodeBuild; its URI."""
    from starburst_dask.images import ensure_image
    from starburst_dask.images.lockfile import Lock, LockedPackage
    from starburst_dask.local.packages import closure, installed

    here = installed()
    versions = {n: here[n].version for n in closure(["dask", "distributed"])}
    versions.update(extra)
    packages = tuple(
        LockedPackage(n, v, "pip", "linux-64", f"https://index/{n}", None, "0" * 64)
        for n, v in sorted(versions.items())
    )
    session = boto3.session.Session(region_name=local_fargate.region)
    lock = Lock(packages, ("linux-64",), PYTHON)
    return ensure_image(lock, repository=repository, builder="codebuild", session=session).uri


def test_a_task_of_a_built_image_imports_exactly_its_lock(ecs, local_fargate):
    image = _built_image(local_fargate, "exact")
    arn = run(ecs, image, "import dask, distributed, cloudpickle; import xarray")
    task = stopped(ecs, arn)
    assert task["containers"][0]["exitCode"] == 1  # xarray is installed here, not locked
    assert "ModuleNotFoundError: No module named 'xarray'" in log(arn)[-1]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"not-installed-here": "1.0"}, "holds not-installed-here 1.0, which is not installed"),
        ({"xarray": "1999.1.0"}, "holds xarray 1999.1.0, and this environment"),
    ],
)
def test_a_built_image_whose_lock_this_machine_lacks_fails_plainly(ecs, local_fargate, extra, says):
    image = _built_image(local_fargate, f"lacking-{len(extra)}-{next(iter(extra))}", extra)
    task = stopped(ecs, run(ecs, image, "import dask"))
    assert task["stopCode"] == "TaskFailedToStart"
    assert task["stoppedReason"].startswith("LocalFargateImageError: ")
    assert says in task["stoppedReason"]
