"""Helpers shared by the tests."""

import platform
import time

import dask

#: The images of this environment's dask and Python (the local Fargate runs no other).
PYTHON = ".".join(platform.python_version_tuple()[:2])
DASK_IMAGE = f"daskdev/dask:{dask.__version__}-py{PYTHON}"
PYTHON_IMAGE = f"python:{PYTHON}"


def wait_until(predicate, timeout=60.0, interval=0.2):
    """Wait for ``predicate()`` to be true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
