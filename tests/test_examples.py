"""The examples in ``examples/``, run on the local Fargate as users run them, and their
results checked against the same computation done in this process.

Their clusters run this environment (``software="current"``, the default, as for a user
who runs a script): the image is built once, by the local Fargate's CodeBuild, and its
tasks import only what this environment has installed (xarray, pandas, pyarrow).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import dask
import pandas as pd
import pytest
import xarray as xr
from conftest import IMAGE_VAR
from distributed import Client

from starburst_dask import FargateCluster, demo

EXAMPLES = Path(__file__).parents[1] / "examples"
NAMES = ["monte_carlo", "dataframe_pipeline", "xarray_pipeline"]


def load(name: str) -> ModuleType:
    """The example ``examples/<name>.py``, imported as a module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def computed_here(example: ModuleType):
    """The example's computation on dask's synchronous scheduler, in this process."""
    return example.job().compute(scheduler="sync")


def check_against_plain_libraries(name: str, example: ModuleType, result) -> None:
    """``result`` equals the same computation without dask: numpy, pandas, xarray on
    numpy arrays, in this process."""
    if name == "monte_carlo":
        expected = demo.summarise(demo.simulate(0, example.SIMULATIONS, example.SEED))
        assert result == expected
        assert result.simulations == example.SIMULATIONS
    elif name == "dataframe_pipeline":
        frame = example.readings().compute(scheduler="sync")
        assert isinstance(frame, pd.DataFrame)
        expected = example.analyse(frame)
        pd.testing.assert_frame_equal(result.sort_index(), expected.sort_index())
        assert len(result) == frame["name"].nunique()
    else:
        data = example.temperature().compute(scheduler="sync")
        assert data.chunks is None  # numpy-backed: no dask in the computation
        expected = example.analyse(data)
        xr.testing.assert_allclose(result, expected)
        assert int(result.notnull().sum()) == 48 - 11  # 48 months; the first 11 lack a year


def test_every_example_is_run_here_and_shown_in_the_docs():
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == sorted(NAMES)
    page = (EXAMPLES.parent / "docs" / "examples.md").read_text()
    for name in NAMES:
        assert f"```{{literalinclude}} ../examples/{name}.py" in page


@pytest.fixture(scope="module")
def own_environment():
    """Clusters run this environment, as a user's do (the session's default is dask's
    image); so do the processes started here."""
    env = {k: v for k, v in os.environ.items() if k != IMAGE_VAR}
    with dask.config.set({"starburst.image": None}):
        yield env


@pytest.fixture(scope="module")
def client(local_fargate, own_environment):
    """A client of one small cluster the examples share."""
    with FargateCluster(n_workers=2) as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)
        yield client


@pytest.mark.parametrize("name", NAMES)
def test_example_on_a_cluster_matches_the_computation_done_here(name, client):
    example = load(name)
    result = example.run(client)
    assert example.report(result) == example.report(computed_here(example))
    check_against_plain_libraries(name, example, result)


@pytest.mark.parametrize("name", NAMES)
def test_example_script_runs_as_is_and_prints_the_result(name, local_fargate, own_environment):
    example = load(name)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        env={**own_environment, **local_fargate.env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert example.report(computed_here(example)) in done.stdout
