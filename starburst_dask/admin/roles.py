"""The IAM roles ECS tasks run with, and ECS's service-linked role."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from .. import fargate
from ..aws import lookups
from ..aws.clients import SyncClients
from ..aws.names import SECRET_PREFIX, trust_policy
from ..ecs import boot
from ..images import pull_through
from .managed import CREATED, EXISTS, FOREIGN, MANAGED_TAG, UPDATED, Resource, is_managed

EXECUTION_POLICY = "starburst-dask-execution"
S3_POLICY = "starburst-dask-s3"
#: The task role's inline policy letting workers find their scheduler's address.
FIND_SCHEDULER_POLICY = "starburst-dask-find-scheduler"
#: The execution role's inline policy reading the project's own secrets (and no others).
SECRETS_POLICY = "starburst-dask-secrets"
TRUST_ECS_TASKS = trust_policy("ecs-tasks.amazonaws.com")
#: What AmazonECSTaskExecutionRolePolicy grants, inline: needs no managed policies
#: (which some accounts restrict, and which moto only knows when told to load them).
EXECUTION_PERMISSIONS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "ecr:GetAuthorizationToken",
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchGetImage",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ],
            "Resource": "*",
        }
    ],
}

#: ECS's service-linked role: ECS manages tasks' network interfaces and capacity providers
#: through it ("Using service-linked roles for Amazon ECS"). A new account lacks it, and
#: CreateCluster with capacity providers fails until it exists and has propagated.
ECS_SERVICE = "ecs.amazonaws.com"
ECS_SERVICE_LINKED_ROLE = "AWSServiceRoleForECS"


def trusts_ecs_tasks(role: dict[str, Any]) -> bool:
    """Whether ECS tasks may assume ``role``."""
    document = role.get("AssumeRolePolicyDocument") or {}
    if isinstance(document, str):
        document = json.loads(unquote(document))
    for statement in document.get("Statement", []):
        services = (statement.get("Principal") or {}).get("Service", [])
        services = [services] if isinstance(services, str) else services
        if statement.get("Effect") == "Allow" and "ecs-tasks.amazonaws.com" in services:
            return True
    return False


def ensure_service_linked_role(aws: SyncClients) -> Resource:
    """ECS's service-linked role, which a new account lacks until its first cluster."""
    if lookups.role(aws.iam, ECS_SERVICE_LINKED_ROLE) is not None:
        return Resource("IAM service-linked role", ECS_SERVICE_LINKED_ROLE, EXISTS)
    try:
        aws.iam.create_service_linked_role(AWSServiceName=ECS_SERVICE)
    except ClientError as e:  # made meanwhile: "... has been taken in this account"
        if lookups.error_code(e) != "InvalidInput" or "taken" not in str(e):
            raise
        return Resource("IAM service-linked role", ECS_SERVICE_LINKED_ROLE, EXISTS)
    return Resource("IAM service-linked role", ECS_SERVICE_LINKED_ROLE, CREATED)


def ensure_role(
    aws: SyncClients, name: str, policies: dict[str, dict[str, Any]]
) -> tuple[str, Resource]:
    """A role ECS tasks can assume, with these inline ``policies`` (put if missing or changed).

    Returns the role's ARN and what was done.
    """
    role = lookups.role(aws.iam, name, tags=True)
    if role is None:
        role = aws.iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(TRUST_ECS_TASKS),
            Description="starburst-dask tasks",
            Tags=[dict(zip(("Key", "Value"), MANAGED_TAG, strict=True))],
        )["Role"]
        for policy, document in policies.items():
            aws.iam.put_role_policy(
                RoleName=name, PolicyName=policy, PolicyDocument=json.dumps(document)
            )
        detail = f"inline policy {', '.join(policies)}" if policies else "no permissions"
        return role["Arn"], Resource("IAM role", name, CREATED, detail)
    if not is_managed(lookups.tag_dict(role.get("Tags"))):
        return role["Arn"], Resource("IAM role", name, FOREIGN)
    added = []
    for policy, document in policies.items():
        try:
            current = aws.iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
        except ClientError as e:
            if lookups.error_code(e) != "NoSuchEntity":
                raise
            current = None
        if isinstance(current, str):
            current = json.loads(unquote(current))
        if current != document:
            aws.iam.put_role_policy(
                RoleName=name, PolicyName=policy, PolicyDocument=json.dumps(document)
            )
            added.append(policy)
    if added:
        return role["Arn"], Resource("IAM role", name, UPDATED, f"policy {', '.join(added)}")
    return role["Arn"], Resource("IAM role", name, EXISTS)


def task_policies(aws: SyncClients, cluster: str, s3_bucket: str | None) -> dict[str, Any]:
    """The task role's inline policies, by name, as setup puts them: its workers find
    their scheduler in ``cluster``; with ``s3_bucket``, read and write that bucket."""
    policies = {FIND_SCHEDULER_POLICY: find_scheduler_policy(aws, cluster)}
    if s3_bucket:
        policies[S3_POLICY] = s3_policy(s3_bucket)
    return policies


def find_scheduler_policy(aws: SyncClients, cluster: str) -> dict[str, Any]:
    """The task role's policy letting workers find their scheduler in ECS ``cluster``."""
    identity = lookups.caller_identity(aws.sts)
    partition, account = identity["Arn"].split(":")[1], identity["Account"]
    return boot.find_scheduler_policy(
        f"arn:{partition}:ecs:{aws.region}:{account}:cluster/{cluster}"
    )


def s3_policy(bucket: str) -> dict[str, Any]:
    """Read and write access to one bucket: the only permission tasks get."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": f"arn:aws:s3:::{bucket}",
            },
            {
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                ],
                "Resource": f"arn:aws:s3:::{bucket}/*",
            },
        ],
    }


def execution_permissions(aws: SyncClients, pull_through_cache: bool) -> dict[str, Any]:
    """The execution role's policy: AmazonECSTaskExecutionRolePolicy's actions, and with
    the pull through cache what its first pull of an image needs, on its repositories."""
    if not pull_through_cache:
        return EXECUTION_PERMISSIONS
    account = lookups.caller_identity(aws.sts)["Account"]
    repositories = f"arn:aws:ecr:{aws.region}:{account}:repository/{pull_through.RULE_PREFIX}/*"
    return {
        **EXECUTION_PERMISSIONS,
        "Statement": [
            *EXECUTION_PERMISSIONS["Statement"],
            {
                "Effect": "Allow",
                "Action": list(fargate.PULL_THROUGH_PERMISSIONS),
                "Resource": repositories,
            },
        ],
    }


def execution_policies(aws: SyncClients, pull_through_cache: bool) -> dict[str, dict[str, Any]]:
    """The execution role's inline policies, by name, as setup puts them."""
    account = lookups.caller_identity(aws.sts)["Account"]
    return {
        EXECUTION_POLICY: execution_permissions(aws, pull_through_cache),
        SECRETS_POLICY: secrets_policy(aws.region, account),
    }


def lacking_policy(aws: SyncClients, role: str, kind: str, cluster: str) -> str | None:
    """What ``role`` (``kind``: ``execution_role`` or ``task_role``) could not do without
    setup's inline policy, if it lacks it or it changed; ``cluster`` is the ECS cluster."""
    if kind == "execution_role":
        account = lookups.caller_identity(aws.sts)["Account"]
        policy, document = SECRETS_POLICY, secrets_policy(aws.region, account)
        why = f"may not read the project's secrets ({SECRET_PREFIX}*)"
    else:
        policy, document = FIND_SCHEDULER_POLICY, find_scheduler_policy(aws, cluster)
        why = "workers could not find their scheduler (ecs:DescribeTasks)"
    return why if lacks_policy(aws, role, policy, document) else None


def lacks_policy(aws: SyncClients, role: str, policy: str, document: dict[str, Any]) -> bool:
    """Whether ``role`` lacks setup's inline ``policy`` as ``document`` (or it changed)."""
    try:
        current = aws.iam.get_role_policy(RoleName=role, PolicyName=policy)
    except ClientError as e:
        if lookups.error_code(e) != "NoSuchEntity":
            raise
        return True
    found = current["PolicyDocument"]
    if isinstance(found, str):
        found = json.loads(unquote(found))
    return bool(found != document)


def secrets_policy(region: str, account: str) -> dict[str, Any]:
    """The execution role may read the project's own secrets (``SECRET_PREFIX``) only,
    which ECS reads for a container definition's ``secrets`` when a task starts."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": f"arn:aws:secretsmanager:{region}:{account}:secret:{SECRET_PREFIX}*",
            }
        ],
    }
