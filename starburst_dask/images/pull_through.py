"""Docker Hub images through the account's ECR pull through cache rule.

Fargate pulls Docker Hub images anonymously, and Docker Hub limits anonymous pulls per
address (:data:`starburst_dask.fargate.DOCKER_HUB_ANONYMOUS_PULLS`): a cluster behind one
NAT gateway shares one address, and its tasks beyond the limit stop with
``toomanyrequests``. Through a pull through cache rule (``starburst-dask setup
--docker-hub-secret``), ECR pulls each image once, with the account's Docker Hub
credentials, and the tasks pull from ECR. When config ``starburst.image-cache`` names
the rule's prefix and the rule exists, a cluster's Docker Hub image becomes its cached
URI, ``<account>.dkr.ecr.<region>.amazonaws.com/<prefix>/<path>:<tag>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import fargate
from ..aws import lookups, names

#: The repository prefix of the rule setup creates; the name marks it as the project's.
RULE_PREFIX = "starburst-dask/docker-hub"
SETUP_HINT = "starburst-dask setup --docker-hub-secret <secret ARN>"


def docker_hub_path(image: str) -> tuple[str, str] | None:
    """``(path, ":tag" or "@digest")`` of a Docker Hub image as its registry names it
    (official images under ``library/``), or None for another registry's image."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        if first not in ("docker.io", "index.docker.io", fargate.DOCKER_HUB_UPSTREAM):
            return None
        image = rest
    if "@" in image:
        path, digest = image.split("@", 1)
        reference = f"@{digest}"
    elif ":" in image.rsplit("/", 1)[-1]:
        path, tag = image.rsplit(":", 1)
        reference = f":{tag}"
    else:
        path, reference = image, ":latest"
    return (path if "/" in path else f"library/{path}"), reference


def cached_uri(image: str, registry: str, prefix: str) -> str | None:
    """The URI of ``image`` through the rule ``prefix`` of ``registry``
    (``<account>.dkr.ecr.<region>.amazonaws.com``); None if it is not a Docker Hub image."""
    found = docker_hub_path(image)
    if found is None:
        return None
    path, reference = found
    return f"{registry}/{prefix}/{path}{reference}"


def resolve(image: str, ecr: Any, region: str, prefix: str, progress: Callable[[str], None]) -> str:
    """``image`` through the Docker Hub rule ``prefix``, when that rule exists.

    Parameters
    ----------
    image : str
        The cluster's image.
    ecr : botocore client
        ECR, in the cluster's region.
    region : str
        The cluster's region.
    prefix : str
        The rule's ``ecrRepositoryPrefix`` (config ``starburst.image-cache``).
    progress : callable
        Told when the configured rule is missing (the image is then pulled from Docker Hub).

    Returns
    -------
    str
        The cached URI, or ``image`` unchanged.
    """
    if docker_hub_path(image) is None:
        return image
    rule = lookups.pull_through_rule(ecr, prefix)
    if rule is None:
        progress(
            f"config starburst.image-cache names the pull through cache rule {prefix!r}, "
            f"which does not exist: {image} is pulled from Docker Hub, subject to its "
            f"anonymous pull limit per address; {SETUP_HINT} creates the rule"
        )
        return image
    if rule["upstreamRegistryUrl"] != fargate.DOCKER_HUB_UPSTREAM:
        progress(
            f"the pull through cache rule {prefix!r} caches "
            f"{rule['upstreamRegistryUrl']}, not Docker Hub: {image} is pulled from "
            "Docker Hub"
        )
        return image
    return cached_uri(image, names.ecr_registry(rule["registryId"], region), prefix) or image
