"""The platforms an image provides, checked against the cluster's architecture before launch.

Fargate pulls an image for the task's platform (``linux/amd64`` for X86_64 tasks,
``linux/arm64`` for ARM64) and stops a task whose image lacks it with
``CannotPullContainerError``. Where the platforms can be known before launch, that is an
error first: an ECR image whose manifest is a list or an index (what ``docker buildx``
pushes) names them. A single image manifest keeps its platform in its config blob, and
public images are not asked about (``daskdev/dask`` is built for both platforms).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import ClientError

from .. import fargate
from ..aws import names
from ..aws.clients import client_config
from .errors import ImageArchitectureError

logger = logging.getLogger(__name__)

#: Media types of manifests that list one manifest per platform (Docker, OCI).
INDEX_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
#: What BatchGetImage may answer with: a list or index first, else one image's manifest.
ACCEPTED_MEDIA_TYPES = [
    *INDEX_MEDIA_TYPES,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
]


def manifest_platforms(manifest: dict[str, Any]) -> frozenset[str] | None:
    """``os/architecture`` of each image a manifest list or index names, or ``None`` for a
    single image's manifest (its platform is in its config blob).

    Attestation manifests (``unknown/unknown``, which buildx adds) are not platforms.
    """
    if manifest.get("mediaType") not in INDEX_MEDIA_TYPES and "manifests" not in manifest:
        return None
    platforms = (m.get("platform") or {} for m in manifest.get("manifests", ()))
    return frozenset(
        f"{p['os']}/{p['architecture']}"
        for p in platforms
        if p.get("os") and p.get("os") != "unknown"
    )


def check_image_platform(image: str, architecture: str, session: Any) -> None:
    """Raise :class:`ImageArchitectureError` when ``image`` is known to lack the platform
    of ``architecture`` tasks.

    Parameters
    ----------
    image : str
        The cluster's image.
    architecture : {"X86_64", "ARM64"}
        The tasks' CPU architecture.
    session : boto3.Session
        AWS session that reads ECR (``ecr:BatchGetImage``).
    """
    ecr_image = names.ecr_image(image)
    if ecr_image is None:
        return
    ecr = session.client("ecr", region_name=ecr_image.region, config=client_config())
    try:
        found = ecr.batch_get_image(
            registryId=ecr_image.account,
            repositoryName=ecr_image.repository,
            imageIds=[
                {"imageDigest": ecr_image.digest}
                if ecr_image.digest
                else {"imageTag": ecr_image.tag or "latest"}
            ],
            acceptedMediaTypes=ACCEPTED_MEDIA_TYPES,
        )["images"]
    except ClientError as e:  # the pull will say what is wrong, in AWS's words
        logger.info("platforms of %s not checked: %s", image, e)
        return
    platforms = manifest_platforms(json.loads(found[0]["imageManifest"])) if found else None
    wanted = fargate.IMAGE_PLATFORMS[architecture]
    if platforms is not None and wanted not in platforms:
        other = next((a for a, p in fargate.IMAGE_PLATFORMS.items() if p in platforms), None)
        raise ImageArchitectureError(
            f"{image} provides {', '.join(sorted(platforms)) or 'no platform'}, not {wanted}, "
            f"which {architecture} tasks pull: Fargate would stop every task with "
            f"CannotPullContainerError. "
            + (f"Pass architecture={other!r}, or build" if other else "Build")
            + f" the image for {wanted} (software=... with architecture={architecture!r}, "
            f"or docker buildx build --platform {wanted})"
        )
