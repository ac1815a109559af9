"""doctor's image check: the user's environment by default, else the configured image's
versions against this client's."""

from __future__ import annotations

import platform

import dask
import distributed

from starburst_dask.admin.doctor import OK, WARN, _image

PYTHON = ".".join(platform.python_version_tuple()[:2])


def test_without_an_image_clusters_run_the_users_environment():
    with dask.config.set({"starburst.image": None, "starburst.software": None}):
        check = _image()
    assert (check.status, check.detail) == (
        OK,
        "software='current': built once into ECR, then reused",
    )


def test_an_image_of_another_dask_is_a_warning_naming_both_versions():
    with dask.config.set({"starburst.image": f"daskdev/dask:2020.1.0-py{PYTHON}"}):
        check = _image()
    assert check.status == WARN
    assert f"distributed 2020.1.0 but this client has distributed {distributed.__version__}" in (
        check.detail
    )


def test_the_clients_own_image_is_fine():
    image = f"daskdev/dask:{distributed.__version__}-py{PYTHON}"
    with dask.config.set({"starburst.image": image}):
        assert (_image().status, _image().detail) == (OK, image)
