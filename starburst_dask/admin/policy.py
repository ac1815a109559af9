"""The least-privilege IAM policy a user needs: `starburst-dask iam-policy`.

The actions are data, grouped by what needs them: running clusters (always), running
``starburst-dask setup``/``teardown`` (``setup=True``) and building images of the
user's environment (``images=True``, the default: clusters without ``image=`` do).
``iam:PassRole`` is limited to the project's own roles, and only for the services that
use them.
"""

from __future__ import annotations

from typing import Any

from .. import config
from ..aws.names import SECRET_PREFIX
from ..images import registry
from ..images.builders import CODEBUILD_ROLE

#: IAM actions by purpose. Each is ``service-prefix:Action`` as IAM names it.
ACTIONS: dict[str, tuple[str, ...]] = {
    "clusters": (
        # FargateCluster: preflight, task definition, tasks, addresses, quota, cost.
        "ecs:DescribeClusters",
        "ecs:DescribeTaskDefinition",
        "ecs:RegisterTaskDefinition",
        "ecs:DeregisterTaskDefinition",  # a cluster's own revision (TLS), at close
        "ecs:DeleteTaskDefinitions",
        "ecs:RunTask",
        "ecs:DescribeTasks",
        "ecs:ListTasks",
        "ecs:StopTask",
        "ecs:TagResource",  # RunTask with tags needs it (tag-on-create authorization)
        "ec2:DescribeVpcs",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeRouteTables",
        "ec2:DescribeVpcEndpoints",
        "logs:DescribeLogGroups",
        "logs:GetLogEvents",
        "logs:FilterLogEvents",
        "iam:GetRole",
        "servicequotas:GetServiceQuota",
        "servicequotas:GetAWSDefaultServiceQuota",
        "servicequotas:ListRequestedServiceQuotaChangeHistoryByQuota",
        "servicequotas:RequestServiceQuotaIncrease",
        "cloudwatch:GetMetricData",
        "pricing:GetProducts",
        "sts:GetCallerIdentity",
        "iam:SimulatePrincipalPolicy",  # doctor names missing permissions
        "ecr:DescribeRepositories",
        "ecr:DescribeImages",
        "ecr:BatchGetImage",  # an ECR image's platforms, checked against `architecture`
        "ecr:DescribePullThroughCacheRules",  # config image-cache: the rule exists?
        "secretsmanager:DescribeSecret",  # secrets=: each exists (no value is read)
        "ssm:DescribeParameters",
    ),
    "setup": (
        # starburst-dask setup, doctor, cleanup and teardown.
        "ecs:CreateCluster",
        "ecs:PutClusterCapacityProviders",
        "ecs:DeleteCluster",
        "ecs:ListTagsForResource",
        "ecs:ListTaskDefinitions",  # cleanup: revisions closed clusters left
        "secretsmanager:ListSecrets",  # cleanup: secrets closed clusters left
        "iam:CreateRole",
        "iam:DeleteRole",
        "iam:TagRole",
        "iam:ListRoleTags",
        "iam:PutRolePolicy",
        "iam:GetRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
        "iam:DetachRolePolicy",
        "iam:CreateServiceLinkedRole",
        "logs:CreateLogGroup",
        "logs:DeleteLogGroup",
        "logs:PutRetentionPolicy",
        "logs:ListTagsForResource",
        "logs:ListTagsLogGroup",
        "logs:TagResource",
        "ec2:CreateSecurityGroup",
        "ec2:DeleteSecurityGroup",
        "ec2:CreateTags",
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupIngress",
        "ecr:CreateRepository",
        "ecr:DeleteRepository",
        "ecr:ListTagsForResource",
        "ecr:TagResource",
        "ecr:CreatePullThroughCacheRule",
        "ecr:UpdatePullThroughCacheRule",
        "ecr:DeletePullThroughCacheRule",  # setup --docker-hub-secret, teardown
        "codebuild:CreateProject",
        "codebuild:BatchGetProjects",
        "s3:CreateBucket",
        "s3:ListBucket",
        "s3:PutLifecycleConfiguration",
        "s3:PutBucketTagging",  # what setup made, for teardown to find
        "s3:GetBucketTagging",
        "codebuild:DeleteProject",  # teardown: the project, and the bucket with its objects
        "s3:DeleteObject",
        "s3:DeleteBucket",
    ),
    # Each cluster's TLS secret, on the project's secrets only (SECRET_RESOURCE).
    "secrets": (
        "secretsmanager:CreateSecret",
        "secretsmanager:TagResource",  # CreateSecret with tags needs it
        "secretsmanager:DeleteSecret",
    ),
    "images": (
        # starburst-dask image build / software=: push to ECR, build on CodeBuild.
        "ecr:GetAuthorizationToken",
        *registry.PUSH_ACTIONS,
        "ecr:ListImages",
        "codebuild:StartBuild",
        "codebuild:BatchGetBuilds",
        "s3:PutObject",
        "s3:GetObject",
        "s3:ListBucket",
    ),
}

#: The secrets the ``secrets`` actions may act on: the project's own.
SECRET_RESOURCE = f"arn:aws:secretsmanager:*:*:secret:{SECRET_PREFIX}*"

#: IAM's service prefix where it is not botocore's service name.
IAM_PREFIXES = {"service-quotas": "servicequotas"}
#: S3 operations whose IAM action has another name.
S3_ACTIONS = {
    "HeadBucket": "ListBucket",
    "HeadObject": "GetObject",
    "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "DeleteObjects": "DeleteObject",
}

#: The service each of the project's roles is passed to.
_PASSED_TO = {"execution_role": "ecs-tasks.amazonaws.com", "task_role": "ecs-tasks.amazonaws.com"}


def policy_document(setup: bool = False, images: bool = True) -> dict[str, Any]:
    """The IAM policy document for running clusters, and optionally setup and images.

    Parameters
    ----------
    setup : bool
        Include what ``starburst-dask setup``, ``doctor``, ``cleanup`` and ``teardown``
        need (creating roles, the ECS cluster, the log group, the security group...).
    images : bool
        Include what building environment images needs (ECR push, CodeBuild, S3): a
        cluster without ``image=`` builds one of the user's environment the first time.

    Returns
    -------
    dict
        A policy document (``Version`` and ``Statement``), ready for ``json.dumps``.
    """
    groups = ["clusters", *(["setup"] if setup else []), *(["images"] if images else [])]
    actions = sorted({a for g in groups for a in ACTIONS[g]})
    statements: list[dict[str, Any]] = [
        {"Sid": "StarburstDask", "Effect": "Allow", "Action": actions, "Resource": "*"},
        {
            "Sid": "ClusterSecrets",
            "Effect": "Allow",
            "Action": sorted(ACTIONS["secrets"]),
            "Resource": SECRET_RESOURCE,
        },
        {
            "Sid": "PassTaskRoles",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": sorted(f"arn:aws:iam::*:role/{r}" for r in passed_roles()),
            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
        },
    ]
    if images or setup:  # setup creates the CodeBuild project where no Docker engine runs
        statements.append(
            {
                "Sid": "PassImageBuildRole",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": f"arn:aws:iam::*:role/{CODEBUILD_ROLE}",
                "Condition": {"StringEquals": {"iam:PassedToService": "codebuild.amazonaws.com"}},
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def passed_roles() -> dict[str, str]:
    """The names of the roles the project passes (from config), each with its service."""
    return {_role_name(config.setting(k)): service for k, service in _PASSED_TO.items()}


def project_secret(region: str, principal: str) -> str:
    """The ARN of a secret of the project, in ``principal``'s account (for the simulator)."""
    partition, account = principal.split(":")[1], principal.split(":")[4]
    return f"arn:{partition}:secretsmanager:{region}:{account}:secret:{SECRET_PREFIX}x/tls-AbCdEf"


def iam_action(service: str, operation: str) -> str:
    """The IAM action (``prefix:Action``) an API call needs; ``service`` as botocore names it."""
    if service == "s3":
        operation = S3_ACTIONS.get(operation, operation)
    return f"{IAM_PREFIXES.get(service, service)}:{operation}"


def allows(document: dict[str, Any], action: str) -> bool:
    """Whether ``document`` allows ``action`` (``prefix:Action``) on some resource."""
    for statement in document["Statement"]:
        granted = statement["Action"]
        granted = [granted] if isinstance(granted, str) else granted
        if statement["Effect"] == "Allow" and action in granted:
            return True
    return False


def _role_name(role: str) -> str:
    """A role name from a name or an ARN (``arn:aws:iam::123:role/path/name``)."""
    return role.rsplit("/", 1)[-1]
