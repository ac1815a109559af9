"""Helpers shared by the tests."""

import contextlib
import json
import os
import pathlib
import platform
import time

import dask
import dask.config
import yaml

#: The images of this environment's dask and Python (the local Fargate runs no other).
PYTHON = ".".join(platform.python_version_tuple()[:2])
DASK_IMAGE = f"daskdev/dask:{dask.__version__}-py{PYTHON}"
PYTHON_IMAGE = f"python:{PYTHON}"
#: A conda-lock file of a small environment (``tests/data``).
LOCK = pathlib.Path(__file__).parent / "data" / "conda-lock.yml"
#: In a run with workers (pytest-xdist), a file that exists once every test outside
#: test_policy.py has finished (``conftest.SuiteDone``).
SUITE_DONE_VAR = "STARBURST_TEST_SUITE_DONE"


def wait_until(predicate, timeout=60.0, interval=0.2):
    """Wait for ``predicate()`` to be true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@contextlib.contextmanager
def private_dask_config(directory):
    """dask config files (what setup writes) in ``directory``, not the user's."""
    saved = os.environ.get("DASK_CONFIG"), list(dask.config.paths)
    os.environ["DASK_CONFIG"] = str(directory)
    dask.config.paths.append(str(directory))  # dask reads DASK_CONFIG only at import
    try:
        yield
    finally:
        if saved[0] is None:
            os.environ.pop("DASK_CONFIG", None)
        else:
            os.environ["DASK_CONFIG"] = saved[0]
        dask.config.paths[:] = saved[1]
        dask.config.refresh()


def stopped(ecs, arn, cluster="starburst-dask", timeout=60.0):
    """The task once STOPPED, as DescribeTasks reports it."""

    def done():
        [task] = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"]
        return task if task["lastStatus"] == "STOPPED" else None

    wait_until(done, timeout=timeout)
    return done()


def put_image(ecr, repository, tag):
    """An image in the account's ECR ``repository`` under ``tag``, as a build pushes one
    (the local Fargate keeps the manifest; it runs images it knows, not layers)."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 7,
            "digest": "sha256:" + "b" * 64,
        },
        "layers": [],
    }
    with contextlib.suppress(ecr.exceptions.ImageAlreadyExistsException):  # pushed before
        ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)


def lock_with(tmp_path, name, version, platform=None):
    """A copy of :data:`LOCK` with package ``name`` at ``version`` (on one or all platforms)."""
    content = yaml.safe_load(LOCK.read_text())
    for p in content["package"]:
        if p["name"] == name and platform in (None, p["platform"]):
            p["url"] = p["url"].replace(f"-{p['version']}-", f"-{version}-")
            p["version"] = version
    path = tmp_path / f"{name}-{version}-conda-lock.yml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path
