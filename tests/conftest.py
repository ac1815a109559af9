"""Shared fixtures."""

import pytest

from starburst_dask.local import LocalFargate
from starburst_dask.local.server import AUDIT_VAR

ROOMY_QUOTA = 64


@pytest.fixture(scope="module")
def local_fargate():
    """A prepared local Fargate; this process's AWS clients point at it meanwhile.

    Module-scoped: one emulator (moto server, task processes) per test module. Only one
    can run in a process at a time. Its vCPU quota is roomy: tests of the quota itself
    set their own, since usage lingers in the per-minute usage metric between tests.
    """
    with LocalFargate(vcpu_quota=ROOMY_QUOTA) as aws:
        yield aws


@pytest.fixture(autouse=True, scope="session")
def private_cost_files(tmp_path_factory):
    """The cost ledger and the price cache in temporary directories, not the user's."""
    patch = pytest.MonkeyPatch()
    patch.setenv("STARBURST_DASK_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    patch.setenv("STARBURST_DASK_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    patch.undo()


@pytest.fixture(autouse=True, scope="session")
def audit_project_calls(tmp_path_factory):
    """Every local Fargate records the project's own AWS calls in one file (test_policy)."""
    patch = pytest.MonkeyPatch()
    patch.setenv(AUDIT_VAR, str(tmp_path_factory.mktemp("audit") / "calls.jsonl"))
    yield
    patch.undo()


def pytest_collection_modifyitems(items):
    """test_policy.py last: it checks the calls every other test made."""
    items.sort(key=lambda item: item.path.name == "test_policy.py")
