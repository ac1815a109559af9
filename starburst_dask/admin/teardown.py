"""Teardown: delete what setup created, and only that (resources carrying its tag)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import ClientError

from .. import fargate
from ..aws import lookups
from ..aws.clients import SyncClients
from ..images import pull_through
from . import inventory
from .config_file import config_path
from .managed import DELETED, EXISTS, KEPT, Names, Resource, is_managed


def managed_resources(
    region: str | None = None, names: Names | None = None
) -> tuple[SyncClients, list[Resource]]:
    """What :func:`teardown` would delete: resources of setup's names that carry its tag.

    Resources of those names without the tag are listed with status :data:`KEPT`.
    """
    aws = SyncClients(lookups.region(region))
    names = names or Names.from_config()
    found: list[Resource] = []

    def add(kind: str, name: str, tags: dict[str, str] | None, detail: str = "") -> None:
        if tags is not None:
            found.append(Resource(kind, name, EXISTS if is_managed(tags) else KEPT, detail))

    cluster = lookups.ecs_cluster(aws.ecs, names.cluster, tags=True)
    add("ECS cluster", names.cluster, lookups.tag_dict(cluster.get("tags")) if cluster else None)
    for role_name in (names.execution_role, names.task_role):
        role = lookups.role(aws.iam, role_name, tags=True)
        add("IAM role", role_name, lookups.tag_dict(role.get("Tags")) if role else None)
    group = lookups.log_group(aws.logs, names.log_group)
    add("log group", names.log_group, lookups.log_group_tags(aws.logs, group) if group else None)
    for sg in lookups.security_groups(aws.ec2, name=names.security_group):
        add("security group", sg["GroupId"], lookups.tag_dict(sg.get("Tags")), sg["VpcId"])
    repo = lookups.repository(aws.ecr, names.repository)
    add(
        "ECR repository",
        names.repository,
        lookups.repository_tags(aws.ecr, repo["repositoryArn"]) if repo else None,
    )
    found.extend(pull_through_resources(aws))
    path = config_path()
    if path.exists():
        found.append(Resource("dask config", str(path), EXISTS))
    return aws, found


def pull_through_resources(aws: SyncClients) -> list[Resource]:
    """The project's pull through cache rule and the repositories ECR made under its
    prefix (its first pull of each image): ours by their name, since neither takes tags
    from setup."""
    prefix = pull_through.RULE_PREFIX
    found = []
    if lookups.pull_through_rule(aws.ecr, prefix) is not None:
        found.append(Resource("pull through cache rule", prefix, EXISTS, "Docker Hub"))
    for page in aws.ecr.get_paginator("describe_repositories").paginate():
        found.extend(
            Resource("ECR repository", repo["repositoryName"], EXISTS, "pull through cache")
            for repo in page["repositories"]
            if repo["repositoryName"].startswith(f"{prefix}/")
        )
    return found


def teardown(aws: SyncClients, found: list[Resource]) -> list[Resource]:
    """Delete the managed resources of ``found`` (from :func:`managed_resources`).

    The project's own tasks in the ECS cluster are stopped first. A deletion AWS refuses
    (e.g. an ECS cluster where others' tasks run) is reported with its reason, and the
    rest go on.
    """
    deleters: dict[str, Callable[[Resource], None]] = {
        "ECS cluster": lambda r: _delete_ecs_cluster(aws, r.name),
        "IAM role": lambda r: _delete_role(aws, r.name),
        "log group": lambda r: aws.logs.delete_log_group(logGroupName=r.name),
        "security group": lambda r: aws.ec2.delete_security_group(GroupId=r.name),
        # Force: the repository is ours, and its images exist only to run clusters.
        "ECR repository": lambda r: aws.ecr.delete_repository(repositoryName=r.name, force=True),
        "pull through cache rule": lambda r: aws.ecr.delete_pull_through_cache_rule(
            ecrRepositoryPrefix=r.name
        ),
        "dask config": lambda r: Path(r.name).unlink(missing_ok=True),
    }
    done = []
    for resource in found:
        if resource.status != EXISTS:
            done.append(resource)
            continue
        try:
            deleters[resource.kind](resource)
            done.append(dataclasses.replace(resource, status=DELETED))
        except ClientError as e:
            done.append(
                dataclasses.replace(
                    resource, status="failed", detail=e.response["Error"].get("Message", str(e))
                )
            )
    return done


def _delete_ecs_cluster(aws: SyncClients, name: str) -> None:
    """Stop the project's tasks in the ECS cluster, wait until they stop, delete it."""
    stopped = inventory.stop(
        aws.ecs, inventory.clusters(aws.ecs, [name]), "starburst-dask teardown"
    )
    for i in range(0, len(stopped), fargate.DESCRIBE_TASKS_MAX):
        aws.ecs.get_waiter("tasks_stopped").wait(
            cluster=name,
            tasks=stopped[i : i + fargate.DESCRIBE_TASKS_MAX],
            WaiterConfig={"Delay": 2, "MaxAttempts": 90},
        )
    aws.ecs.delete_cluster(cluster=name)


def _delete_role(aws: SyncClients, name: str) -> None:
    for policy in aws.iam.list_role_policies(RoleName=name)["PolicyNames"]:
        aws.iam.delete_role_policy(RoleName=name, PolicyName=policy)
    for policy in aws.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        aws.iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    aws.iam.delete_role(RoleName=name)
