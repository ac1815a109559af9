"""ECR: the repository for the project's images, and the Docker Hub pull through cache
rule clusters pull through."""

from __future__ import annotations

from typing import Any

from .. import fargate
from ..aws import lookups, names
from ..aws.clients import SyncClients
from ..errors import ConfigurationError
from ..images import pull_through
from .managed import CREATED, EXISTS, FOREIGN, MANAGED_TAG, UPDATED, Resource, is_managed


def ensure_repository(aws: SyncClients, name: str) -> Resource:
    """An ECR repository for images (same-region ECR pulls are the fastest)."""
    repo = lookups.repository(aws.ecr, name)
    if repo is None:
        repo = aws.ecr.create_repository(
            repositoryName=name,
            tags=[{"Key": MANAGED_TAG[0], "Value": MANAGED_TAG[1]}],
        )["repository"]
        return Resource("ECR repository", name, CREATED, repo["repositoryUri"])
    if not is_managed(lookups.repository_tags(aws.ecr, repo["repositoryArn"])):
        return Resource("ECR repository", name, FOREIGN, repo["repositoryUri"])
    return Resource("ECR repository", name, EXISTS, repo["repositoryUri"])


def check_docker_hub_secret(arn: str, region: str) -> str:
    """``arn``, if ECR can use it for a Docker Hub pull through cache rule in ``region``.

    Raises
    ------
    ConfigurationError
        Not a secret ARN, a name without the prefix ECR requires, or another region's.
    """
    match = names.SECRET_ARN.fullmatch(arn)
    if match is None:
        raise ConfigurationError(
            f"--docker-hub-secret {arn!r} is not a Secrets Manager secret ARN; pass the ARN "
            "`aws secretsmanager describe-secret --secret-id <name>` prints"
        )
    if not match["name"].startswith(fargate.PULL_THROUGH_SECRET_PREFIX):
        raise ConfigurationError(
            f"--docker-hub-secret {arn!r}: ECR uses only secrets whose name begins with "
            f"{fargate.PULL_THROUGH_SECRET_PREFIX!r}; create one, e.g. `aws secretsmanager "
            f"create-secret --name {fargate.PULL_THROUGH_SECRET_PREFIX}docker-hub "
            '--secret-string \'{"username":"<user>","accessToken":"<token>"}\'`'
        )
    if match["region"] != region:
        raise ConfigurationError(
            f"--docker-hub-secret {arn!r} is in {match['region']}; ECR needs the secret in "
            f"the rule's region, {region}: create it there"
        )
    return arn


def ensure_pull_through_rule(aws: SyncClients, secret: str | None) -> Resource | None:
    """The Docker Hub pull through cache rule clusters pull through, or None.

    Created with ``secret`` (Docker Hub requires credentials), its secret updated when a
    different one is given; an existing rule is kept without one. None: no rule, and none
    asked for. Rules take no tags: their prefix, :data:`pull_through.RULE_PREFIX`, marks
    them as the project's.
    """
    prefix = pull_through.RULE_PREFIX
    rule: dict[str, Any] | None = lookups.pull_through_rule(aws.ecr, prefix)
    if rule is not None and rule["upstreamRegistryUrl"] != fargate.DOCKER_HUB_UPSTREAM:
        raise ConfigurationError(
            f"the pull through cache rule {prefix!r} caches {rule['upstreamRegistryUrl']}, "
            "not Docker Hub; delete it (aws ecr delete-pull-through-cache-rule "
            f"--ecr-repository-prefix {prefix}) and rerun setup"
        )
    if rule is None and secret is None:
        return None
    if rule is None:
        aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix=prefix,
            upstreamRegistryUrl=fargate.DOCKER_HUB_UPSTREAM,
            credentialArn=secret,
        )
        return Resource("pull through cache rule", prefix, CREATED, "Docker Hub")
    if secret is not None and rule.get("credentialArn") != secret:
        aws.ecr.update_pull_through_cache_rule(ecrRepositoryPrefix=prefix, credentialArn=secret)
        return Resource("pull through cache rule", prefix, UPDATED, "Docker Hub")
    return Resource("pull through cache rule", prefix, EXISTS, "Docker Hub")
