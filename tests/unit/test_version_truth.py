"""Version truth: a lock or image whose Python or serialization libraries differ from the
client's is refused before anything is built or launched, naming both and the fix."""

import platform
from importlib import metadata

import pytest

from starburst_dask.images.errors import ImageVersionError
from starburst_dask.images.lockfile import Lock, LockedPackage
from starburst_dask.images.versions import check_image, check_lock

PYTHON = ".".join(platform.python_version_tuple()[:2])


def _lock(manager="pip", **versions):
    here = {n: metadata.version(n) for n in ("dask", "distributed", "cloudpickle", "msgpack")}
    names = {"msgpack": "msgpack-python", "dask": "dask-core"} if manager == "conda" else {}
    packages = tuple(
        LockedPackage(names.get(n, n), v, manager, "linux-64", "u", "m", "s")
        for n, v in {**here, **versions}.items()
    )
    if manager == "conda":
        packages += (LockedPackage("python", f"{PYTHON}.1", "conda", "linux-64", "u", "m", "s"),)
        return Lock(packages, ("linux-64",))
    return Lock(packages, ("linux-64",), PYTHON)


def test_the_clients_own_versions_pass():
    check_lock(_lock(), "linux-64", "this environment")
    check_lock(_lock("conda"), "linux-64", "conda-lock.yml")


@pytest.mark.parametrize("name", ["cloudpickle", "msgpack", "dask", "distributed"])
@pytest.mark.parametrize("manager", ["pip", "conda"])
def test_another_serialization_library_is_refused_naming_both_and_the_fix(name, manager):
    ours = metadata.version(name)
    with pytest.raises(ImageVersionError) as refused:
        check_lock(_lock(manager, **{name: "0.0.1"}), "linux-64", "the lock")
    said = str(refused.value)
    assert f"the lock has {name} 0.0.1 but this client has {name} {ours}" in said
    assert f"pip install {name}==0.0.1 here" in said and "software='current'" in said


def test_another_python_is_refused():
    other = "3.10" if PYTHON != "3.10" else "3.12"
    lock = Lock(_lock().packages, ("linux-64",), other)
    with pytest.raises(ImageVersionError, match=f"has Python {other} but this client has Python"):
        check_lock(lock, "linux-64", "the lock")
    with pytest.raises(ImageVersionError, match=f"Python {other}"):
        check_image(f"daskdev/dask:{metadata.version('dask')}-py{other}")
