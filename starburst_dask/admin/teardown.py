"""Teardown: delete what setup created, and only that (resources carrying its tag)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from .. import config, fargate
from ..aws import lookups
from ..aws.clients import SyncClients, client_config
from ..ecs.tagged import described_tasks
from ..ecs.tasks import TAG_CLUSTER, TAG_ROLE
from ..errors import StarburstError
from ..images import pull_through
from . import leftovers
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
    found.extend(codebuild_resources(aws))
    # What clusters whose client died left (teardown runs only once no task is left).
    for left in leftovers.find(aws.secrets, aws.ecs):
        found.append(Resource(f"cluster {left.kind}", left.name, EXISTS, left.cluster))
    path = config_path()
    if path.exists():
        found.append(Resource("dask config", str(path), EXISTS))
    return aws, found


def codebuild_resources(aws: SyncClients) -> list[Resource]:
    """The CodeBuild project, its role and its bucket (what builds images), by their tags."""
    from ..images.build import build_bucket
    from ..images.builders import CODEBUILD_ROLE

    found = []
    name = str(config.setting("image_build_project"))
    project = lookups.codebuild_project(aws.codebuild, name)
    if project is not None:
        tags = lookups.tag_dict(project.get("tags"))
        found.append(Resource("CodeBuild project", name, EXISTS if is_managed(tags) else KEPT))
    role = lookups.role(aws.iam, CODEBUILD_ROLE, tags=True)
    if role is not None:
        tags = lookups.tag_dict(role.get("Tags"))
        found.append(Resource("IAM role", CODEBUILD_ROLE, EXISTS if is_managed(tags) else KEPT))
    bucket = build_bucket(aws.session)
    s3 = aws.session.client("s3", config=client_config())
    try:
        tags = lookups.tag_dict(s3.get_bucket_tagging(Bucket=bucket)["TagSet"])
    except ClientError as e:
        if e.response["Error"]["Code"] == "NoSuchBucket":
            return found
        tags = {}  # NoSuchTagSet: not ours
    found.append(Resource("S3 bucket", bucket, EXISTS if is_managed(tags) else KEPT))
    return found


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


#: How long teardown waits for tasks already stopping (desired status STOPPED) to stop.
STOPPING_WAIT = 180
STOPPING_POLL = 2
#: The most blocking tasks an error names one by one.
NAMED_TASKS_MAX = 10


class ClusterInUseError(StarburstError):
    """The ECS cluster teardown would delete has tasks that are not stopped."""


def teardown(aws: SyncClients, found: list[Resource]) -> list[Resource]:
    """Delete the managed resources of ``found`` (from :func:`managed_resources`).

    Nothing is deleted while the ECS cluster has tasks that run or are meant to: AWS
    refuses to delete a cluster with active tasks, and the roles, log group and security
    group are theirs too. Tasks already stopping are waited for. Another deletion AWS
    refuses is reported with its reason, and the rest go on.

    Raises
    ------
    ClusterInUseError
        Naming the tasks and how to stop them; nothing was deleted.
    """
    check_unused(aws, found)
    deleters: dict[str, Callable[[Resource], object]] = {
        "ECS cluster": lambda r: _delete_ecs_cluster(aws, r.name),
        "IAM role": lambda r: _delete_role(aws, r.name),
        "log group": lambda r: aws.logs.delete_log_group(logGroupName=r.name),
        "security group": lambda r: aws.ec2.delete_security_group(GroupId=r.name),
        # Force: the repository is ours, and its images exist only to run clusters.
        "ECR repository": lambda r: aws.ecr.delete_repository(repositoryName=r.name, force=True),
        "pull through cache rule": lambda r: aws.ecr.delete_pull_through_cache_rule(
            ecrRepositoryPrefix=r.name
        ),
        "CodeBuild project": lambda r: aws.codebuild.delete_project(name=r.name),
        "S3 bucket": lambda r: _delete_bucket(aws, r.name),
        "dask config": lambda r: Path(r.name).unlink(missing_ok=True),
        "cluster secret": lambda r: aws.secrets.delete_secret(
            SecretId=r.name, ForceDeleteWithoutRecovery=True
        ),
        "cluster task definition": lambda r: leftovers.remove_definition(aws.ecs, r.name),
    }
    done = []
    # The ECS cluster first: if tasks started since the check, nothing else goes.
    for resource in sorted(found, key=lambda r: r.kind != "ECS cluster"):
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


def check_unused(aws: SyncClients, found: list[Resource]) -> None:
    """Refuse, before any deletion, to delete an ECS cluster whose tasks are not stopped.

    Tasks meant to run block it, whoever started them; tasks already stopping are waited
    for (up to :data:`STOPPING_WAIT` seconds).

    Raises
    ------
    ClusterInUseError
    """
    for resource in found:
        if resource.kind != "ECS cluster" or resource.status != EXISTS:
            continue
        active = active_tasks(aws.ecs, resource.name)
        if active and all(t.get("desiredStatus") == "STOPPED" for t in active):
            try:  # already stopping: wait for them
                for i in range(0, len(active), fargate.DESCRIBE_TASKS_MAX):
                    aws.ecs.get_waiter("tasks_stopped").wait(
                        cluster=resource.name,
                        tasks=[t["taskArn"] for t in active[i : i + fargate.DESCRIBE_TASKS_MAX]],
                        WaiterConfig={
                            "Delay": STOPPING_POLL,
                            "MaxAttempts": int(STOPPING_WAIT / STOPPING_POLL),
                        },
                    )
            except WaiterError:
                pass  # still not stopped: refused below
            active = active_tasks(aws.ecs, resource.name)
        if active:
            raise ClusterInUseError(in_use_message(aws.region, resource.name, active))


def active_tasks(ecs: Any, cluster: str) -> list[dict[str, Any]]:
    """The tasks of ``cluster`` that are not STOPPED (as DescribeTasks gives them, with tags).

    ListTasks lists tasks meant to run by default; those asked to stop are listed with
    ``desiredStatus=STOPPED`` (until their last status is STOPPED, they still count).
    """
    listed = described_tasks(ecs, cluster)
    return [t for t in listed if t.get("lastStatus") != "STOPPED"]


def in_use_message(region: str, cluster: str, tasks: list[dict[str, Any]]) -> str:
    """The refusal: which tasks block ``cluster``, and how to stop them."""
    lines = [
        f"teardown deleted nothing: the ECS cluster {cluster} has {len(tasks)} task(s) "
        "that are not stopped (AWS refuses to delete a cluster with active tasks, and "
        "they may be someone else's):"
    ]
    ours, others = set(), 0
    for task in tasks:
        tags = lookups.tag_dict(task.get("tags"))
        if TAG_CLUSTER in tags and TAG_ROLE in tags:
            ours.add(tags[TAG_CLUSTER])
        else:
            others += 1
    for task in tasks[:NAMED_TASKS_MAX]:
        tags = lookups.tag_dict(task.get("tags"))
        owner = (
            f"starburst-dask cluster {tags[TAG_CLUSTER]} ({tags[TAG_ROLE]})"
            if TAG_CLUSTER in tags and TAG_ROLE in tags
            else f"startedBy {task.get('startedBy') or '-'}"
        )
        lines.append(
            f"  {task['taskArn'].rsplit('/', 1)[-1]}  {task.get('lastStatus', '?')}  {owner}, "
            f"group {task.get('group', '-')}"
        )
    if len(tasks) > NAMED_TASKS_MAX:
        lines.append(f"  ... and {len(tasks) - NAMED_TASKS_MAX} more")
    fixes = []
    if ours:
        named = " ".join(f"--cluster {name}" for name in sorted(ours))
        fixes.append(
            f"stop the starburst-dask clusters with `starburst-dask cleanup --region {region} "
            f"--ecs-cluster {cluster} {named} --yes`"
        )
    if others:
        fixes.append(
            "stop the others (if they are yours to stop) with `aws ecs stop-task --region "
            f"{region} --cluster {cluster} --task <id>`"
        )
    lines.append("To proceed, " + "; ".join(fixes) + "; then rerun teardown.")
    return "\n".join(lines)


def _delete_ecs_cluster(aws: SyncClients, name: str) -> None:
    """Delete the ECS cluster; what AWS refuses it for (tasks started since
    :func:`check_unused`, services, container instances) stops teardown there."""
    try:
        aws.ecs.delete_cluster(cluster=name)
    except ClientError as e:
        code = e.response["Error"]["Code"]
        if code == "ClusterContainsTasksException":
            message = in_use_message(aws.region, name, active_tasks(aws.ecs, name))
        elif code.startswith("ClusterContains"):  # services, container instances
            message = (
                f"teardown deleted nothing: AWS refused to delete the ECS cluster {name} "
                f"({e.response['Error'].get('Message', code)}); delete what it names, "
                "then rerun teardown"
            )
        else:
            raise
        raise ClusterInUseError(message) from None


def _delete_role(aws: SyncClients, name: str) -> None:
    for policy in aws.iam.list_role_policies(RoleName=name)["PolicyNames"]:
        aws.iam.delete_role_policy(RoleName=name, PolicyName=policy)
    for policy in aws.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        aws.iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    aws.iam.delete_role(RoleName=name)


def _delete_bucket(aws: SyncClients, name: str) -> None:
    """Delete the build contexts' bucket with its objects (only needed while a build runs)."""
    s3 = aws.session.client("s3", config=client_config())
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=name, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=name)
