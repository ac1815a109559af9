"""ECR: where built images live, keyed by their content tag."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from botocore.exceptions import ClientError

from ..aws import lookups

#: The tag of what setup manages (``admin/managed.py``), on what images create for it.
MANAGED_TAG = ("starburst-dask:managed", "true")
#: What a push of an image to a repository takes, besides ``ecr:GetAuthorizationToken``
#: (which has no resource): the layer upload and the manifest ("Pushing an image", ECR
#: user guide), and the reads of what is already there.
PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
)


@dataclasses.dataclass(frozen=True)
class Login:
    """Docker registry credentials from ECR's GetAuthorizationToken (valid 12 hours)."""

    registry: str
    username: str
    password: str = dataclasses.field(repr=False)


def ensure_repository(ecr: Any, name: str) -> str:
    """URI of ECR repository ``name``, created (scan on push) when missing.

    Creating it here, not only in setup, keeps ``image build`` a single step: a
    repository is free and private to the account.
    """
    found = lookups.repository(ecr, name)
    if found is None:
        found = ecr.create_repository(
            repositoryName=name,
            imageScanningConfiguration={"scanOnPush": True},
            tags=[{"Key": MANAGED_TAG[0], "Value": MANAGED_TAG[1]}],  # as setup tags its own
        )["repository"]
    return found["repositoryUri"]


def find_tag(ecr: Any, repository: str, tag: str) -> dict[str, Any] | None:
    """The image detail of ``repository``'s image tagged ``tag``, or None (no repository,
    or no such image): one DescribeImages call."""
    try:
        found = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ClientError as e:
        if e.response["Error"]["Code"] in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return None
        raise
    return dict(found["imageDetails"][0])


def list_images(ecr: Any, repository: str) -> list[dict[str, Any]]:
    """Every tagged image of ``repository``, newest first: tag, digest, size, push time."""
    images: list[dict[str, Any]] = []
    try:
        for page in ecr.get_paginator("describe_images").paginate(
            repositoryName=repository, filter={"tagStatus": "TAGGED"}
        ):
            images += page["imageDetails"]
    except ClientError as e:
        if e.response["Error"]["Code"] == "RepositoryNotFoundException":
            return []
        raise
    rows = [
        {
            "tag": tag,
            "digest": i["imageDigest"],
            "size": i.get("imageSizeInBytes"),
            "pushed": i.get("imagePushedAt"),
        }
        for i in images
        for tag in i.get("imageTags", [])
    ]
    return sorted(rows, key=lambda r: str(r["pushed"] or ""), reverse=True)


def login(ecr: Any) -> Login:
    """Registry credentials from ``GetAuthorizationToken`` (base64 of ``user:password``)."""
    data = ecr.get_authorization_token()["authorizationData"][0]
    username, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    registry = data["proxyEndpoint"].removeprefix("https://").removeprefix("http://")
    return Login(registry=registry, username=username, password=password)
