"""Helpers shared by the tests."""

import time


def wait_until(predicate, timeout=60.0, interval=0.2):
    """Wait for ``predicate()`` to be true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
