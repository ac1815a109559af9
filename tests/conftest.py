"""Shared fixtures, the test layers and the leak check.

Two layers: ``tests/unit/`` (fakes, injected clocks, no local Fargate; seconds) and the
emulator tests beside it, marked ``emulator`` here, automatically: those that use the
``local_fargate`` fixture or start a ``LocalFargate`` themselves.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import types
from pathlib import Path

import dask
import leaks
import pytest
from helpers import SUITE_DONE_VAR

ROOMY_QUOTA = 64
#: The image option as child processes read it from their environment.
IMAGE_VAR = "DASK_STARBURST__IMAGE"
#: The local Fargate's latency profile as child processes read it from their environment.
LATENCY_VAR = "DASK_STARBURST__LOCAL__LATENCY"
#: What starts a local Fargate besides the fixture: the class, and the commands that run
#: one (``python -m starburst_dask.local``, ``starburst-dask local`` and ``demo``).
STARTERS = {"LocalFargate", "starburst_dask.local", "local", "demo"}
UNIT = Path(__file__).parent / "unit"
#: The module that checks the calls every other test made: it runs last.
POLICY = "test_policy.py"


def pytest_configure(config):
    leaks.track_event_loops()
    if hasattr(config, "workerinput"):
        return  # a pytest-xdist worker: it inherits the environment set below
    from starburst_dask.local.server import AUDIT_VAR

    directory = Path(tempfile.mkdtemp(prefix="starburst-tests-"))
    config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
    # Every local Fargate of the run, in any process, records the project's own AWS calls
    # in one file (test_policy).
    _set_env(config, AUDIT_VAR, str(directory / "calls.jsonl"))
    if getattr(config.option, "tx", None):  # the tests run in workers
        _set_env(config, SUITE_DONE_VAR, str(directory / "done"))
        config.pluginmanager.register(SuiteDone(directory / "done"), "suite_done")


def _set_env(config, name, value):
    os.environ[name] = value
    config.add_cleanup(lambda: os.environ.pop(name, None))


class SuiteDone:
    """In a run with workers (pytest-xdist): creates ``path`` once every test outside
    test_policy.py has finished, in whichever worker; test_policy waits for it."""

    def __init__(self, path):
        self.path = path
        self.left = None

    def pytest_xdist_node_collection_finished(self, node, ids):
        if self.left is None:  # every worker collects the same tests
            self.left = {i for i in ids if not i.split("::")[0].endswith(POLICY)}
            self._check()

    def pytest_runtest_logreport(self, report):
        if report.when == "teardown" and self.left is not None:
            self.left.discard(report.nodeid)
            self._check()

    def _check(self):
        if not self.left:
            self.path.touch()


@pytest.fixture(scope="module")
def local_fargate():
    """A prepared local Fargate; this process's AWS clients point at it meanwhile.

    Module-scoped: one emulator (moto server, task processes) per test module. Only one
    can run in a process at a time. Its vCPU quota is roomy: tests of the quota itself
    set their own, since usage lingers in the per-minute usage metric between tests.
    """
    from starburst_dask.local import LocalFargate

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
def fast_local_fargate():
    """Every local Fargate of the session, this process's and those of the processes tests
    start (the CLI, the demo), takes sub-second task start and stop times: the default,
    AWS's tens of seconds, would add minutes to each module. Tests of the latencies
    choose theirs."""
    patch = pytest.MonkeyPatch()
    patch.setenv(LATENCY_VAR, "fast")
    with dask.config.set({"starburst.local.latency": "fast"}):
        yield
    patch.undo()


@pytest.fixture(autouse=True, scope="session")
def dask_image_unless_about_environments():
    """Clusters run dask's own image here, as ``starburst.image`` configures it, also in
    the processes tests start. The default, the user's own environment locked and built
    once, is for the tests about environments (``test_environment_sync.py``, the demo),
    which unset it: every other cluster would build an image of this environment."""
    from helpers import DASK_IMAGE

    patch = pytest.MonkeyPatch()
    patch.setenv(IMAGE_VAR, DASK_IMAGE)
    with dask.config.set({"starburst.image": DASK_IMAGE}):
        yield
    patch.undo()


@pytest.fixture(autouse=True)
def no_leaks(request):
    """After each test: no thread, pending asyncio task or child process it started.

    Requested after every other fixture of a wider scope (pytest sets those up first), so
    what they own is in the snapshot, not counted against the test.
    """
    before = leaks.Snapshot.take()
    yield
    left = before.leaks()
    if left:
        pytest.fail(
            f"{request.node.nodeid} left running after {leaks.GRACE:g} s:\n" + "\n".join(left),
            pytrace=False,
        )


def pytest_collection_modifyitems(items):
    """Mark the emulator tests; test_policy.py last: it checks the calls every other test
    made."""
    for item in items:
        if not _is_unit(item) and _starts_local_fargate(item):
            item.add_marker(pytest.mark.emulator)
    items.sort(key=lambda item: item.path.name == POLICY)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A unit test asking for the local Fargate fails before it starts one."""
    if _is_unit(item) and "local_fargate" in getattr(item, "fixturenames", ()):
        pytest.fail(
            "tests/unit/ is the layer without the local Fargate: use fakes, or move "
            "the test beside the emulator tests in tests/",
            pytrace=False,
        )


def _is_unit(item) -> bool:
    return UNIT in Path(item.path).parents


def _starts_local_fargate(item) -> bool:
    """Whether the test uses the ``local_fargate`` fixture, or its code or one of its
    fixtures' starts a local Fargate (the class, or a command that runs one)."""
    if "local_fargate" in getattr(item, "fixturenames", ()):
        return True
    functions = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    if info is not None:
        functions += [d.func for defs in info.name2fixturedefs.values() for d in defs]
    return any(_names(getattr(f, "__code__", None)) & STARTERS for f in functions)


def _names(code: types.CodeType | None) -> set[str]:
    """The names and string constants of ``code`` and of the functions nested in it."""
    if code is None:
        return set()
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
        elif isinstance(const, str):
            names.add(const)
    return names
