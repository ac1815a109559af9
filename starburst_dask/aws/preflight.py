"""The read-only checks a cluster makes before it creates anything, and its network.

They run before the cluster's image is found or built (a build creates ECR and CodeBuild
resources): what a task's network must reach depends on where its image is, so that
check (:func:`check_image_route`) runs once the image is known.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import ClientError

from .. import config
from ..admin.config_file import config_path
from ..admin.roles import FIND_SCHEDULER_POLICY
from ..ecs import boot, network
from ..errors import ConfigurationError, MissingResourceError
from ..options import ClusterOptions
from . import lookups, names, secret_access
from .clients import AwsClients

logger = logging.getLogger("starburst_dask")

SETUP_HINT = "run: starburst-dask setup"


async def preflight(aws: AwsClients, options: ClusterOptions) -> dict[str, Any]:
    """Check that what a cluster needs exists, and find its network; create nothing.

    The user's secrets must exist and be readable by the execution role, and the task role
    must let workers find their scheduler. Whether the tasks' network reaches their image,
    logs, ECS and secrets is :func:`check_image_route`'s, given what this returns.

    Returns
    -------
    dict
        ``cluster_arn``, ``subnets``, ``security_groups``, ``assign_public_ip`` (chosen
        from the subnets' route tables when ``"auto"``), ``execution_role_arn``,
        ``task_role_arn``, and for :func:`check_image_route` the subnets' ``routes`` and
        the ``services`` the tasks call (ECS, and their secrets').

    Raises
    ------
    MissingResourceError
        Naming the missing resource and how to create it.
    ConfigurationError
        When the execution role may not read one of the user's ``secrets``, or the task
        role may not describe the cluster's tasks.
    """
    cluster = await lookups.ecs_cluster.aio(aws.ecs, options.ecs_cluster)
    if cluster is None:
        raise MissingResourceError(
            f"ECS cluster {options.ecs_cluster!r} does not exist in {options.region}"
            f"{_came_from('ecs_cluster', options.ecs_cluster)}; {SETUP_HINT} (or pass "
            "ecs_cluster=...)"
        )
    if await lookups.log_group.aio(aws.logs, options.log_group) is None:
        raise MissingResourceError(
            f"CloudWatch log group {options.log_group!r} does not exist in {options.region}"
            f"{_came_from('log_group', options.log_group)}; {SETUP_HINT} (or pass log_group=...)"
        )
    roles = {}
    for key in ("execution_role", "task_role"):
        roles[f"{key}_arn"] = await _role_arn(aws, getattr(options, key), key)
    await _finds_scheduler(aws, roles["task_role_arn"], cluster["clusterArn"])
    await secret_access.check(aws, options.secrets, roles["execution_role_arn"])
    subnets, groups = await _network(aws, options)
    routes = await _routes(aws, options, subnets, groups)
    return {
        "cluster_arn": cluster["clusterArn"],
        "subnets": subnets,
        "security_groups": groups,
        "assign_public_ip": network.choose_public_ip(routes, options.assign_public_ip),
        **roles,
        "routes": routes,
        # Workers call ECS to find their scheduler; secrets come from their services.
        "services": ("ecs", *secret_access.services(options.secrets)),
    }


async def _finds_scheduler(aws: AwsClients, task_role_arn: str, cluster_arn: str) -> None:
    """Refuse a task role with which workers could not find their scheduler (``BOOT``:
    DescribeTasks on the ECS cluster's tasks), asking IAM's policy simulator."""
    policy = boot.find_scheduler_policy(cluster_arn)
    [statement] = policy["Statement"]
    resource = statement["Resource"].replace("*", "0" * 32)  # any task of the cluster
    try:
        answer = await aws.iam.simulate_principal_policy(
            PolicySourceArn=task_role_arn,
            ActionNames=[boot.FIND_SCHEDULER_ACTION],
            ResourceArns=[resource],
        )
    except ClientError as e:  # the caller may not simulate: workers would say it instead
        logger.warning(
            "could not check that the task role may find the scheduler (%s): %s",
            boot.FIND_SCHEDULER_ACTION,
            lookups.error_code(e),
        )
        return
    [result] = answer["EvaluationResults"]
    if result["EvalDecision"] == "allowed":
        return
    role = names.role_name(task_role_arn)
    raise ConfigurationError(
        f"the task role {role} may not describe the ECS cluster's tasks "
        f"({boot.FIND_SCHEDULER_ACTION} on {statement['Resource']}), with which workers "
        f"find their scheduler's address. {SETUP_HINT} again (it adds the policy "
        f"{FIND_SCHEDULER_POLICY} to its task role), or add this statement to the role's "
        f"policies: {json.dumps(statement)}"
    )


def check_image_route(found: dict[str, Any], image: str, region: str) -> None:
    """Check that tasks on the network :func:`preflight` ``found`` reach ``image``, their
    logs and their secrets.

    Raises
    ------
    ConfigurationError
        Naming each subnet whose tasks could not, and what would let them.
    """
    problems = network.problems(
        found["routes"], found["assign_public_ip"], image, region, found["services"]
    )
    if problems:
        raise ConfigurationError(
            "tasks could not pull their image, send their logs, read their secrets or find "
            "their scheduler: "
            + "; ".join(problems)
            + ". Use subnets with a route to an internet gateway (and assign_public_ip "
            "True or 'auto') or to a NAT gateway, or add the VPC endpoints named"
        )


async def _routes(
    aws: AwsClients, options: ClusterOptions, subnets: list[str], groups: list[str]
) -> network.Routes:
    """The subnets' routes; check the subnets and security groups exist."""
    found = await _described(lookups.subnets, aws.ec2, subnets, "subnets", options.subnets)
    await _described(
        lookups.security_groups, aws.ec2, groups, "security_groups", options.security_groups
    )
    vpcs = sorted({s["VpcId"] for s in found})
    return await lookups.routes.aio(aws.ec2, options.region, vpcs, subnets)


async def _described(
    lookup: lookups.Lookup[Any, list[dict[str, Any]]],
    ec2: Any,
    ids: list[str],
    option: str,
    given: tuple[str, ...],
) -> list[dict[str, Any]]:
    """The ``ids`` of ``option`` (``given``: as configured) described; a clear error naming
    where they came from when some are gone."""
    try:
        return await lookup.aio(ec2, ids)
    except ClientError as e:
        if not lookups.error_code(e).endswith(".NotFound"):
            raise
        said = f"{e.response['Error']['Message']} ({lookups.error_code(e)})"
        stale = config.configured_in_file(option, given)
        if stale:
            raise MissingResourceError(
                f"{said}: starburst.{config.OPTIONS[option]} comes from {stale}, which is "
                f"stale; run `starburst-dask setup` to rewrite it, or pass existing {option}"
            ) from None
        raise MissingResourceError(
            f"{said}; pass existing {option}, or run `starburst-dask setup` to find or "
            f"create them (it writes {config_path()})"
        ) from None


def _came_from(option: str, value: Any) -> str:
    """`` (starburst.<key> in <file>)`` when the configured value of ``option`` is
    ``value`` and a config file set it, else ``""``."""
    found = config.configured_in_file(option, value)
    return f" (starburst.{config.OPTIONS[option]} in {found})" if found else ""


async def _role_arn(aws: AwsClients, role: str, option: str) -> str:
    if role.startswith("arn:"):
        return role
    found = await lookups.role.aio(aws.iam, role)
    if found is None:
        raise MissingResourceError(
            f"IAM role {role!r} ({option}) does not exist; {SETUP_HINT} (or pass {option}=...)"
        )
    return str(found["Arn"])


async def _network(aws: AwsClients, options: ClusterOptions) -> tuple[list[str], list[str]]:
    """The configured subnets and security groups, or the default VPC's."""
    subnets, groups = list(options.subnets), list(options.security_groups)
    if subnets and groups:
        return subnets, groups
    vpc = await lookups.vpc.aio(aws.ec2)
    if vpc is None:
        raise MissingResourceError(
            f"no subnets or security groups configured and {options.region} has no default "
            f"VPC; {SETUP_HINT} (or pass subnets=[...] and security_groups=[...])"
        )
    if not subnets:
        found = await lookups.vpc_subnets.aio(aws.ec2, vpc["VpcId"], default_for_az=True)
        subnets = sorted(s["SubnetId"] for s in found)
    if not groups:
        default = await lookups.security_group.aio(aws.ec2, vpc["VpcId"], "default")
        groups = [default["GroupId"]] if default else []
    return subnets, groups
