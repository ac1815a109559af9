"""Your environment on the workers by default, end to end on the local Fargate.

A fresh virtual environment (``python -m venv``, packages from the package index at this
environment's versions, and a small helper package of the user's installed from its
directory) runs ``FargateCluster(n_workers=2)`` with no image option: the environment is
locked with pip, built through the local CodeBuild, and its workers compute an xarray
reduction that calls the helper package. A second cluster finds the image in ECR (no
build at the CodeBuild API), and a task cannot import what the lock does not contain.
The same for a ready ``conda-lock.yml``. Start times are printed (``-s``) for the notes.
"""

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import dask
import pytest
import tomllib
import yaml
from conftest import IMAGE_VAR
from distributed import Client
from packaging.requirements import Requirement

from starburst_dask import FargateCluster
from starburst_dask.local.packages import closure, installed
from starburst_dask.options import ClusterOptions

PROJECT = "starburst-dask-images"
#: The package's requirements that only the local Fargate uses: the client environment
#: here runs against it, not in it, so its tasks must not find them.
LOCAL_FARGATE_ONLY = {"moto", "flask", "flask-cors", "regex"}


def client_requirements() -> list[str]:
    """What the fresh environment installs: the package's requirements (read from
    ``pyproject.toml``, so a new one is never missed) but the local Fargate's, and xarray."""
    root = Path(__file__).parents[1]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = [Requirement(d) for d in declared]
    return [
        r.name + (f"[{','.join(sorted(r.extras))}]" if r.extras else "")
        for r in wanted
        if r.name not in LOCAL_FARGATE_ONLY
    ] + ["pyyaml", "xarray"]


HELPER = '''\
"""A user's own helper package: not on any index."""
import numpy as np


def anomaly(block):
    """Each value's distance from its block's mean."""
    return block - block.mean()


def where():
    """Where this module was imported from."""
    return __file__
'''
CLIENT = """\
import importlib, json, sys, time
import numpy as np, xarray as xr
import helper
from distributed import Client
from starburst_dask import FargateCluster

started = time.monotonic()
with FargateCluster(n_workers=2) as cluster, Client(cluster) as client:
    start_seconds = time.monotonic() - started
    client.wait_for_workers(2)
    data = xr.DataArray(np.arange(40.0).reshape(8, 5), dims=("x", "y")).chunk({"x": 2})
    result = float(abs(xr.map_blocks(helper.anomaly, data)).sum().compute())
    helper_file = client.submit(helper.where, pure=False).result()
    try:
        client.submit(importlib.import_module, "moto", pure=False).result()
        moto = "imported"
    except ModuleNotFoundError as error:
        moto = str(error)
    print(json.dumps({"image": cluster.options.image, "start_seconds": start_seconds,
                      "result": result, "helper_file": helper_file, "moto": moto}))
"""


def _versions_here():
    """``name==version`` of this environment's distributions: the fresh one installs
    these versions, which the local Fargate, running this environment, can stand for."""
    return "".join(
        f"{d.metadata['Name']}=={d.version}\n"
        for d in metadata.distributions()
        if d.metadata["Name"] and not d.read_text("direct_url.json")
    )


@pytest.fixture(scope="session")
def fresh_environment(tmp_path_factory):
    """A new virtual environment with the client's requirements, xarray and a helper
    package of the user's (installed from its directory), made once per session."""
    root = tmp_path_factory.mktemp("fresh")
    helper = root / "helper-src"
    (helper / "helper").mkdir(parents=True)
    (helper / "helper" / "__init__.py").write_text(HELPER)
    (helper / "pyproject.toml").write_text(
        '[project]\nname = "helper"\nversion = "0.1"\ndependencies = ["numpy"]\n'
        '[build-system]\nrequires = ["setuptools>=68"]\n'
        'build-backend = "setuptools.build_meta"\n'
    )
    constraints = root / "constraints.txt"
    constraints.write_text(_versions_here())
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    done = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "-c", str(constraints)]
        + client_requirements()
        + [str(helper)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        unreachable = ("No matching distribution", "Could not fetch", "Max retries exceeded")
        if any(said in done.stderr for said in unreachable):
            pytest.skip(f"the package index is unreachable here: {done.stderr.strip()[-300:]}")
        raise AssertionError(done.stderr)
    return python


def _run_client(python, local_fargate, tmp_path):
    """The client script in the fresh environment, with no image option configured."""
    env = {**os.environ, **local_fargate.env}
    env.pop(IMAGE_VAR, None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root  # this checkout of starburst-dask, not installed there
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    done = subprocess.run(
        [python, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(line), done.stderr + done.stdout


def _builds(local_fargate):
    return local_fargate.client("codebuild").list_builds_for_project(projectName=PROJECT)["ids"]


@pytest.mark.index
def test_a_fresh_environment_runs_on_its_own_image_built_once(
    fresh_environment, local_fargate, tmp_path
):
    builds = len(_builds(local_fargate))
    first, said = _run_client(fresh_environment, local_fargate, tmp_path)

    # Locked, built once through CodeBuild (saying so), and run.
    assert len(_builds(local_fargate)) == builds + 1
    assert "locking it with pip, then building it once" in said
    assert "building a wheel of your package helper" in said
    expected = float(sum(abs(v - (v // 10) * 10 - 4.5) for v in range(40)))  # |x - block mean|
    assert first["result"] == pytest.approx(expected)
    assert "starburst-local-fargate-wheels" in first["helper_file"]  # the image's wheel
    assert first["moto"] == "No module named 'moto'"  # installed here, not in the lock
    repository, _, tag = first["image"].rpartition(":")
    assert repository.endswith("/starburst-dask")

    second, said = _run_client(fresh_environment, local_fargate, tmp_path)
    assert len(_builds(local_fargate)) == builds + 1  # found in ECR: no build
    assert second["image"] == first["image"] and "nothing to build" in said
    assert second["result"] == first["result"]
    print(
        f"\nfresh environment: first start {first['start_seconds']:.1f} s (lock and build), "
        f"second {second['start_seconds']:.1f} s (image found)"
    )


def _conda_lock(path):
    """A ready conda-lock.yml for linux-64 of dask, distributed and xarray with their
    requirements, at this environment's versions (hashes made up: nothing downloads)."""
    to_conda = {"dask": "dask-core", "msgpack": "msgpack-python"}
    names = sorted(closure(["dask", "distributed", "xarray"]))
    here = installed()

    def entry(name, version, dependencies):
        return {
            "name": name,
            "version": version,
            "manager": "conda",
            "platform": "linux-64",
            "dependencies": dependencies,
            "url": f"https://conda.example.org/conda-forge/linux-64/{name}-{version}-0.conda",
            "hash": {"md5": "0" * 32, "sha256": "0" * 64},
            "category": "main",
            "optional": False,
        }

    python = ".".join(map(str, sys.version_info[:3]))
    packages = [entry("python", python, {}), entry("tini", "0.19.0", {})]
    packages += [entry(to_conda.get(n, n), here[n].version, {"python": ">=3.10"}) for n in names]
    lock = {
        "version": 1,
        "metadata": {"platforms": ["linux-64"], "channels": [{"url": "conda-forge"}]},
        "package": packages,
    }
    path.write_text(yaml.safe_dump(lock, sort_keys=False))
    return path


def test_a_ready_conda_lock_builds_once_and_runs_exactly_its_packages(local_fargate, tmp_path):
    lock = _conda_lock(tmp_path / "conda-lock.yml")
    builds = len(_builds(local_fargate))
    with dask.config.set({"starburst.image": None}):
        assert ClusterOptions.resolve(software=lock).software == str(lock)
        for expected_builds in (builds + 1, builds + 1):  # built once, then found
            with (
                FargateCluster(n_workers=2, software=lock) as cluster,
                Client(cluster) as client,
            ):
                import xarray as xr

                data = xr.DataArray([[1.0, 2.0], [3.0, 4.0]], dims=("x", "y")).chunk({"x": 1})
                assert float(data.sum().compute()) == 10.0
                with pytest.raises(ModuleNotFoundError, match="moto"):
                    client.submit(__import__, "moto", pure=False).result()
            assert len(_builds(local_fargate)) == expected_builds


def test_no_image_option_means_this_environment():
    with dask.config.set({"starburst.image": None, "starburst.software": None}):
        assert ClusterOptions.resolve(region="us-east-1").software == "current"
        assert ClusterOptions.resolve(region="us-east-1", image="x:1").software is None
