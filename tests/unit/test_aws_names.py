"""How AWS writes ECR image URIs, read in one place for the cluster, images and setup."""

import pytest

from starburst_dask.aws import names


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/dask:2024.1.0",
            ("123456789012", "eu-west-1", "team/dask", "2024.1.0", None),
        ),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/dask@sha256:abc",
            ("123456789012", "us-east-1", "dask", None, "sha256:abc"),
        ),
        ("daskdev/dask:latest", None),
        ("ghcr.io/dask/dask:latest", None),
    ],
)
def test_ecr_image_uris_are_read_in_one_place(image, parts):
    found = names.ecr_image(image)
    assert (
        found and (found.account, found.region, found.repository, found.tag, found.digest)
    ) == parts
    if found:
        assert image.startswith(names.ecr_registry(found.account, found.region) + "/")
