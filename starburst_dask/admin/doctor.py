"""``starburst-dask doctor``: check, in order, everything a cluster needs.

Each check reads only; each failure names its fix. The caller's permissions are asked
of IAM's policy simulator when the caller may use it (else one warning says the check
was skipped); the roles are checked to exist and to be assumable by ECS tasks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from .. import config, fargate
from ..aws import lookups, names
from ..aws.clients import SyncClients
from ..ecs import network
from ..errors import StarburstError
from ..images import versions
from ..images.errors import ImageVersionError
from ..options import configured_image
from . import permissions, policy
from .managed import DEFAULT_NAME
from .roles import lacking_policy, trusts_ecs_tasks
from .security_group import WIDE_FIX, open_to_world, wide_admission
from .setup import fargate_quota

OK, WARN, FAIL = "ok", "warn", "fail"
SETUP_FIX = "run: starburst-dask setup"


@dataclasses.dataclass
class Check:
    """The outcome of one check."""

    name: str
    status: str
    detail: str
    fix: str = ""


def run(region: str | None = None, allow_wide_network: bool = False) -> list[Check]:
    """Run every check, in order; stop early when there is no account to talk to.

    Parameters
    ----------
    region : str, optional
        AWS region; default: ``starburst.region`` or the AWS SDK's region.
    allow_wide_network : bool
        A security group admitting networks wider than
        :data:`~.security_group.WIDEST_PREFIX` to a task port warns instead of failing.
    """
    return list(checks(region, allow_wide_network))


def failed(results: list[Check]) -> bool:
    """Whether any check failed (warnings do not count)."""
    return any(c.status == FAIL for c in results)


def checks(region: str | None = None, allow_wide_network: bool = False) -> Iterator[Check]:
    """The checks, one by one (see :func:`run`)."""
    try:
        config.check_values()  # every starburst.* key and value, as clusters read them
    except StarburstError as e:
        yield Check("config", FAIL, str(e), "fix or remove the value where it is set")
        return
    if botocore.session.get_session().get_credentials() is None:
        yield Check(
            "credentials",
            FAIL,
            "no AWS credentials found",
            "run `aws configure` or set AWS_PROFILE",
        )
        return
    try:
        region = lookups.region(region)
    except StarburstError as e:
        yield Check("region", FAIL, str(e), "pass --region or set AWS_DEFAULT_REGION")
        return
    aws = SyncClients(region)
    try:
        identity = lookups.caller_identity(aws.sts)
    except (ClientError, BotoCoreError) as e:
        yield Check(
            "credentials",
            FAIL,
            f"the credentials do not work: {e}",
            "run `aws configure` or refresh your session (e.g. `aws sso login`)",
        )
        return
    yield Check("credentials", OK, f"account {identity['Account']}")
    yield Check("region", OK, region)
    yield from _permissions(aws, identity["Arn"])
    for check in (
        _ecs_cluster,
        _role("execution_role"),
        _role("task_role"),
        _log_group,
        _subnets,
        _routes,
        _security_groups(allow_wide_network),
        _repository,
        _quota,
    ):
        yield _safely(check, aws)
    yield _image()


def _permissions(aws: SyncClients, caller: str) -> Iterator[Check]:
    """The caller's policies allow the project's actions (IAM's policy simulator).

    Missing actions for clusters fail; for setup they warn (only setup needs them). A
    caller who may not use the simulator gets one warning: the check is skipped.
    """
    try:
        arn = permissions.principal(caller, aws.iam)
    except permissions.NotSimulated as e:
        yield Check("permissions", WARN, f"not checked: {e}")
        return
    if arn is None:
        yield Check("permissions", OK, "the account's root user: every action is allowed")
        return
    results = []
    for group, flag, status in (("clusters", "", FAIL), ("setup", " --setup", WARN)):
        try:
            lacking = permissions.missing(aws.iam, arn, policy.ACTIONS[group])
            if group == "clusters":
                secret = policy.project_secret(aws.region, arn)  # a cluster's TLS secret
                lacking += _pass_role(aws, arn)
                lacking += permissions.missing(aws.iam, arn, policy.ACTIONS["secrets"], [secret])
                if not config.setting("image"):  # clusters build the user's environment
                    lacking += permissions.missing(aws.iam, arn, policy.ACTIONS["images"])
        except (ClientError, BotoCoreError) as e:
            yield _not_checked(arn, e)
            return
        name = "permissions" if group == "clusters" else "setup permissions"
        if lacking:
            results.append(
                Check(
                    name,
                    status,
                    f"{arn}: {lacking.describe()}",
                    lacking.fix(f"starburst-dask iam-policy{flag}"),
                )
            )
        else:
            results.append(Check(name, OK, f"{arn} may call every action {group} needs"))
    yield from results


def _not_checked(arn: str, error: Exception) -> Check:
    """The warning when the simulator cannot answer: most often, the caller may not use it."""
    if isinstance(error, ClientError) and error.response["Error"]["Code"] == "AccessDenied":
        return Check(
            "permissions",
            WARN,
            f"not checked: {arn} may not use IAM's policy simulator ({error})",
            f"allow iam:SimulatePrincipalPolicy on {arn} to have doctor name missing permissions",
        )
    return Check("permissions", WARN, f"not checked: IAM's policy simulator failed: {error}")


def _pass_role(aws: SyncClients, arn: str) -> permissions.Missing:
    """Whether ``arn`` may pass the project's roles to their services (one call each)."""
    prefix = names.iam_prefix(arn)
    lacking = permissions.Missing((), ())
    by_service: dict[str, list[str]] = {}
    for role, service in policy.passed_roles().items():
        by_service.setdefault(service, []).append(f"{prefix}:role/{role}")
    for service, roles in by_service.items():
        lacking += permissions.missing(
            aws.iam, arn, ("iam:PassRole",), roles, {"iam:PassedToService": service}
        )
    return lacking


def _safely(check: Callable[[SyncClients], Check], aws: SyncClients) -> Check:
    """Run one check; an AWS error (e.g. access denied) is its failure, not a crash."""
    try:
        return check(aws)
    except (ClientError, BotoCoreError) as e:
        name = getattr(check, "check_name", check.__name__.strip("_").replace("_", " "))
        return Check(name, FAIL, str(e), "check the permissions of your AWS credentials")


def _ecs_cluster(aws: SyncClients) -> Check:
    name = str(config.setting("ecs_cluster"))
    found = lookups.ecs_cluster(aws.ecs, name, tags=True)
    if found is None:
        return Check("ECS cluster", FAIL, f"{name!r} does not exist in {aws.region}", SETUP_FIX)
    missing = set(fargate.CAPACITY_PROVIDERS) - set(found.get("capacityProviders") or [])
    if missing:
        return Check(
            "ECS cluster",
            WARN,
            f"{name}: no {', '.join(sorted(missing))} capacity provider",
            SETUP_FIX,
        )
    return Check("ECS cluster", OK, name)


def _role(key: str) -> Callable[[SyncClients], Check]:
    def check(aws: SyncClients) -> Check:
        label = f"IAM {key.replace('_', ' ')}"
        name = names.role_name(str(config.setting(key)))
        role = lookups.role(aws.iam, name)
        if role is None:
            return Check(label, FAIL, f"{name!r} does not exist", SETUP_FIX)
        if not trusts_ecs_tasks(role):
            return Check(
                label,
                FAIL,
                f"{name}: ECS tasks may not assume it",
                "allow ecs-tasks.amazonaws.com in its trust policy, or "
                + SETUP_FIX
                + " with another role name",
            )
        if key == "execution_role" and not _has_policies(aws, name):
            return Check(
                label,
                WARN,
                f"{name}: no policies, so tasks cannot pull private images or write logs",
                "attach AmazonECSTaskExecutionRolePolicy, "
                "or " + SETUP_FIX + " with another role name",
            )
        lacking = lacking_policy(aws, name, key, str(config.setting("ecs_cluster")))
        if lacking:
            return Check(label, FAIL, f"{name}: {lacking}", SETUP_FIX)
        return Check(label, OK, f"{name}, assumable by ECS tasks")

    check.check_name = f"IAM {key.replace('-', ' ')}"  # type: ignore[attr-defined]
    return check


def _has_policies(aws: SyncClients, role: str) -> bool:
    """Whether ``role`` has any inline or attached policy."""
    return bool(
        aws.iam.list_role_policies(RoleName=role)["PolicyNames"]
        or aws.iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    )


def _log_group(aws: SyncClients) -> Check:
    name = str(config.setting("log_group"))
    group = lookups.log_group(aws.logs, name)
    if group is None:
        return Check("log group", FAIL, f"{name!r} does not exist", SETUP_FIX)
    retention = group.get("retentionInDays")
    return Check(
        "log group",
        OK,
        f"{name}, retention " + (f"{retention} days" if retention else "never expires"),
    )


def _subnets(aws: SyncClients) -> Check:
    subnets = list(config.setting("subnets") or [])
    if not subnets:
        return Check("subnets", WARN, "none configured: tasks use the default VPC's", SETUP_FIX)
    try:
        found = lookups.subnets(aws.ec2, subnets)
    except ClientError as e:
        return Check("subnets", FAIL, str(e), SETUP_FIX)
    zones = {s["AvailabilityZone"] for s in found}
    if len(zones) < 2:
        return Check(
            "subnets",
            WARN,
            f"all in {len(zones)} availability zone",
            "use subnets in two or more zones: " + SETUP_FIX + " --subnets ...",
        )
    return Check("subnets", OK, f"{len(found)} in {len(zones)} zones")


def _routes(aws: SyncClients) -> Check:
    """Tasks on the configured (or default) subnets can pull the image and send logs."""
    subnets = list(config.setting("subnets") or [])
    if subnets:
        found = lookups.subnets(aws.ec2, subnets)
    else:  # as the cluster does: the default VPC's default subnets
        default = lookups.vpc(aws.ec2)
        found = (
            lookups.vpc_subnets(aws.ec2, default["VpcId"], default_for_az=True) if default else []
        )
    if not found:
        return Check("network", FAIL, "no subnets configured and no default VPC", SETUP_FIX)
    vpcs, ids = sorted({s["VpcId"] for s in found}), [s["SubnetId"] for s in found]
    routes = lookups.routes(aws.ec2, aws.region, vpcs, ids)
    public_ip = network.choose_public_ip(routes, config.setting("assign_public_ip"))
    problems = network.problems(routes, public_ip, configured_image(), aws.region)
    if problems:
        return Check(
            "network",
            FAIL,
            "; ".join(problems),
            "use subnets routed to an internet gateway (with assign-public-ip true "
            "or auto) or to a NAT gateway, or create the VPC endpoints named: "
            + SETUP_FIX
            + " --subnets ...",
        )
    through: dict[str | None, str] = {
        network.IGW: "an internet gateway",
        network.NAT: "a NAT gateway",
    }
    kinds = sorted({through.get(r, "VPC endpoints") for r in routes.default_route.values()})
    return Check(
        "network",
        OK,
        f"tasks reach their image and logs through {', '.join(kinds)}"
        + (" with public IPs" if public_ip else ""),
    )


def _security_groups(allow_wide: bool) -> Callable[[SyncClients], Check]:
    def check(aws: SyncClients) -> Check:
        groups = list(config.setting("security_groups") or [])
        if not groups:
            return Check(
                "security group",
                WARN,
                "none configured: tasks use the default VPC's default group",
                SETUP_FIX,
            )
        try:
            found = lookups.security_groups(aws.ec2, groups)
        except ClientError as e:
            return Check("security group", FAIL, str(e), SETUP_FIX)
        wide = wide_admission(found)
        if wide:
            return Check("security group", WARN if allow_wide else FAIL, wide, WIDE_FIX)
        open_ = [g["GroupId"] for g in found if open_to_world(g)]
        if open_:
            return Check(
                "security group",
                WARN,
                f"{', '.join(open_)} admit the whole internet",
                "remove the 0.0.0.0/0 and ::/0 ingress rules",
            )
        return Check("security group", OK, ", ".join(groups))

    check.check_name = "security group"  # type: ignore[attr-defined]
    return check


def _repository(aws: SyncClients) -> Check:
    if lookups.repository(aws.ecr, DEFAULT_NAME) is None:
        return Check(
            "ECR repository",
            WARN,
            f"{DEFAULT_NAME!r} does not exist (needed only for your own images)",
            SETUP_FIX,
        )
    return Check("ECR repository", OK, DEFAULT_NAME)


def _quota(aws: SyncClients) -> Check:
    quota = fargate_quota(aws)
    if quota is None:
        return Check(
            "Fargate vCPU quota",
            WARN,
            "unknown (Service Quotas did not answer)",
            f"look up {fargate.QUOTA_CODES['FARGATE']} in the Service Quotas console",
        )
    need = fargate.vcpus(int(config.setting("scheduler_cpu"))) + int(
        config.setting("n_workers")
    ) * fargate.vcpus(int(config.setting("worker_cpu")))
    if quota < need:
        return Check(
            "Fargate vCPU quota",
            WARN,
            f"{quota:g} vCPUs; the default cluster needs {need:g}",
            "request an increase of L-3032A538 in Service Quotas",
        )
    return Check("Fargate vCPU quota", OK, f"{quota:g} vCPUs")


def _image() -> Check:
    image = config.setting("image")
    if not image:  # clusters build the user's environment into ECR, once per content
        software = config.setting("software") or "current"
        return Check("image", OK, f"software={software!r}: built once into ECR, then reused")
    try:
        versions.check_image(image)  # what its tag records
    except ImageVersionError as e:
        return Check("image", WARN, str(e), "set starburst.image to one matching this client")
    return Check("image", OK, image)


def as_json(results: list[Check]) -> dict[str, Any]:
    """The checks as plain data."""
    return {"ok": not failed(results), "checks": [dataclasses.asdict(c) for c in results]}
