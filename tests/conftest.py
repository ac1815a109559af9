"""Shared fixtures."""

import pytest

from starburst_dask.local import LocalFargate


@pytest.fixture(scope="module")
def local_fargate():
    """A prepared local Fargate; this process's AWS clients point at it meanwhile.

    Module-scoped: one emulator (moto server, task processes) per test module. Only one
    can run in a process at a time.
    """
    with LocalFargate() as aws:
        yield aws
