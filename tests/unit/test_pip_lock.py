"""The pip lock (no conda): its file round trip, the context it renders, its tag."""

import hashlib
import json

import pytest

from starburst_dask.errors import ConfigurationError
from starburst_dask.images import piplock
from starburst_dask.images.context import render
from starburst_dask.images.lockfile import LocalWheel, Lock, LockedPackage


def _lock(tmp_path):
    wheel = tmp_path / "wheels" / "helper" / "helper-0.1-py3-none-any.whl"
    wheel.parent.mkdir(parents=True)
    wheel.write_bytes(b"a wheel")
    packages = tuple(
        LockedPackage(name, "2026.8.0", "pip", "linux-64", f"https://index/{name}.whl", None, h)
        for name, h in (("dask", "a" * 64), ("distributed", "b" * 64))
    )
    local = LocalWheel("helper", "0.1", str(wheel), hashlib.sha256(b"a wheel").hexdigest())
    return Lock(packages, ("linux-64",), "3.11", (local,), "c" * 64)


def test_a_pip_lock_reads_back_as_written(tmp_path):
    lock = _lock(tmp_path)
    piplock.write_lock(lock, tmp_path / piplock.LOCK_NAME)
    assert piplock.read_pip_lock(tmp_path / piplock.LOCK_NAME) == lock


def test_a_pip_lock_renders_pythons_slim_image_with_hashed_wheels_only(tmp_path):
    context = render(_lock(tmp_path), "linux-64")

    assert context.files["requirements.txt"].splitlines() == [
        f"dask==2026.8.0 --hash=sha256:{'a' * 64}",
        f"distributed==2026.8.0 --hash=sha256:{'b' * 64}",
        "/tmp/context/wheels/helper-0.1-py3-none-any.whl --hash=sha256:"
        + hashlib.sha256(b"a wheel").hexdigest(),
    ]
    assert context.binaries == {"wheels/helper-0.1-py3-none-any.whl": b"a wheel"}
    dockerfile = context.files["Dockerfile"]
    assert "FROM python:3.11-slim-bookworm" in dockerfile
    assert "--no-deps --require-hashes --only-binary=:all:" in dockerfile
    assert "--no-cache-dir" in dockerfile and "USER dask" in dockerfile
    # The image's package list and platform, for checks and the local Fargate.
    assert json.loads(context.files["image.json"]) == {
        "platform": "linux-64",
        "python": "3.11",
        "packages": {"dask": "2026.8.0", "distributed": "2026.8.0", "helper": "0.1"},
        "local": {"helper": "wheels/helper-0.1-py3-none-any.whl"},
    }
    # The tag: the versions a client checks, and the environment key known before locking.
    assert context.tag == f"2026.8.0-py3.11-{'c' * 16}"


def test_pip_platforms_are_the_base_images_manylinux_tags():
    tags = piplock.pip_platforms("linux-aarch64")
    assert tags[0] == "manylinux_2_17_aarch64" and "manylinux_2_36_aarch64" in tags
    assert not any("x86_64" in t or "2_37" in t for t in tags)


def test_the_environment_key_follows_versions_and_local_sources(tmp_path):
    source = tmp_path / "helper"
    source.mkdir()
    (source / "helper.py").write_text("X = 1\n")
    local = piplock.LocalPackage("helper", "0.1", source, editable=True)
    environment = piplock.Environment("3.11", (("dask", "2026.8.0"),), (local,))
    key = piplock.environment_key(environment, "linux-64", "template")
    assert key == piplock.environment_key(environment, "linux-64", "template")
    assert key != piplock.environment_key(environment, "linux-aarch64", "template")
    (source / "helper.py").write_text("X = 2\n")  # an editable install changed
    assert key != piplock.environment_key(environment, "linux-64", "template")


class _Dist:
    def __init__(self, name, version, direct_url=None):
        self.metadata, self.version, self._direct = {"Name": name}, version, direct_url

    def read_text(self, name):
        return json.dumps(self._direct) if name == "direct_url.json" and self._direct else None


def test_the_environment_pins_index_installs_and_finds_the_users_own(monkeypatch, tmp_path):
    dists = [
        _Dist("PyYAML", "6.0.2"),
        _Dist("pip", "26.3"),  # the base image's own
        _Dist("starburst-dask", "0.1.0", {"url": "file:///src", "dir_info": {"editable": True}}),
        _Dist("helper", "0.1", {"url": tmp_path.as_uri(), "dir_info": {"editable": True}}),
        _Dist("from-index", "1.0", {"url": "https://files/x.whl", "archive_info": {}}),
    ]
    monkeypatch.setattr(piplock.metadata, "distributions", lambda: dists)
    environment = piplock.current_environment()
    assert environment.pins == (("from-index", "1.0"), ("pyyaml", "6.0.2"))
    assert environment.local == (piplock.LocalPackage("helper", "0.1", tmp_path, True),)


def test_a_version_control_install_is_refused_naming_the_fix(monkeypatch):
    vcs = {"url": "https://github.com/me/tool", "vcs_info": {"vcs": "git"}}
    monkeypatch.setattr(piplock.metadata, "distributions", lambda: [_Dist("tool", "1", vcs)])
    with pytest.raises(ConfigurationError, match="tool is installed from https://github.com"):
        piplock.current_environment()
