"""One-time setup: create or adopt, idempotently, every AWS resource a cluster needs.

Each ``ensure_*`` function (in :mod:`.roles`, :mod:`.ecs_cluster`, :mod:`.vpc`,
:mod:`.security_group`, :mod:`.ecr`) looks first and creates only what is missing,
tagging what it creates with :data:`~.managed.MANAGED_TAG`. A resource that exists
without that tag is used as it is and never changed or deleted: it is not ours. What
setup found is written to a dask config file (:mod:`.config_file`), so
``FargateCluster()`` needs no arguments afterwards; :mod:`.teardown` deletes it all.

Synchronous boto3: this runs from the command line, once.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import dask.config

from .. import config
from ..aws import lookups
from ..aws.clients import SyncClients
from ..aws.names import role_name
from ..errors import ConfigurationError
from .config_file import config_path, write_config
from .ecr import check_docker_hub_secret, ensure_pull_through_rule, ensure_repository
from .ecs_cluster import ensure_ecs_cluster, ensure_log_group
from .managed import CREATED, EXISTS, UPDATED, Names, Resource, is_managed
from .roles import (
    ensure_role,
    ensure_service_linked_role,
    execution_policies,
    task_policies,
    trusts_ecs_tasks,
)
from .security_group import (
    CALLER_PORTS,
    caller_networks,
    check_cidrs,
    check_coverage,
    ensure_security_group,
    my_address,
)
from .vpc import check_routes, find_subnets, find_vpc

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SetupResult:
    """What :func:`setup` found and did."""

    region: str
    resources: list[Resource]
    settings: dict[str, Any]
    config_path: str
    quota: float | None

    @property
    def changed(self) -> bool:
        """Whether anything was created or changed."""
        return any(r.status in (CREATED, UPDATED) for r in self.resources)

    def to_json(self) -> dict[str, Any]:
        """The result as plain data."""
        return {
            "region": self.region,
            "changed": self.changed,
            "resources": [dataclasses.asdict(r) for r in self.resources],
            "settings": self.settings,
            "config_path": self.config_path,
            "fargate_vcpu_quota": self.quota,
        }


def setup(
    region: str | None = None,
    *,
    vpc: str | None = None,
    subnets: list[str] | None = None,
    allow_cidrs: list[str] | None = None,
    allow_my_ip: bool = False,
    allow_wide_network: bool = False,
    ask: Callable[[str], bool] | None = None,
    s3_bucket: str | None = None,
    codebuild: bool | None = None,
    names: Names | None = None,
    docker_hub_secret: str | None = None,
    notify: Callable[[str], None] = logger.info,
) -> SetupResult:
    """Create or adopt everything a cluster needs, and write it to dask config.

    Parameters
    ----------
    region : str, optional
        AWS region; default: ``starburst.region`` or the AWS SDK's region.
    vpc : str, optional
        VPC for the tasks; default: the region's default VPC.
    subnets : list of str, optional
        Subnets (in at least two availability zones); default: the VPC's default
        subnets, one per zone.
    allow_cidrs : list of str, optional
        The caller's networks, which may reach the scheduler and dashboard ports (the
        cluster's own tasks reach each other through the group's rule for itself).
    allow_my_ip : bool
        Admit the caller's current public address too, as ``starburst.setup.checkip-url``
        answers it (:func:`.security_group.my_address`).
    allow_wide_network : bool
        Admit networks that together cover more than
        :data:`.security_group.WIDEST_PREFIX` (an IPv4 /16); refused otherwise.
    ask : callable, optional
        Asked a yes/no question when neither ``allow_cidrs`` nor ``allow_my_ip`` is given
        and the scheduler port would be closed to every network outside the VPC; a yes
        admits the caller's current public address. ``None``: never ask.
    s3_bucket : str, optional
        A bucket the tasks may read and write (the task role gets no other permission).
    codebuild : bool, optional
        Also create the CodeBuild project, its role and bucket that build images without
        a local Docker engine (:func:`ensure_codebuild`). ``None``: when no local Docker
        engine answers, since clusters then build the image of their environment there.
    names : Names, optional
        Resource names; default: :meth:`Names.from_config`.
    docker_hub_secret : str, optional
        ARN of a Secrets Manager secret (name ``ecr-pullthroughcache/...``) holding Docker
        Hub credentials: an ECR pull through cache rule for Docker Hub is created with it,
        and clusters pull their Docker Hub image through ECR, free of Docker Hub's
        anonymous pull limit per address. A rule made earlier is kept without it.
    notify : callable
        Receives one line when setup waits on AWS (IAM propagation).

    Returns
    -------
    SetupResult

    Raises
    ------
    ConfigurationError, MissingResourceError
        Bad arguments, a network that cannot hold a cluster, or an option that cannot
        be applied to a resource setup did not create (nothing is changed then).
    """
    region = lookups.region(region)
    names = names or Names.from_config()
    cidrs = check_cidrs(allow_cidrs or [], allow_wide_network)
    secret = check_docker_hub_secret(docker_hub_secret, region) if docker_hub_secret else None
    aws = SyncClients(region)
    # The network first: a VPC or subnets that cannot hold a cluster stop setup before
    # it creates anything.
    vpc_id = find_vpc(aws, vpc)
    subnet_ids, zones = find_subnets(aws, vpc_id, subnets)
    public_ip = check_routes(aws, vpc_id, subnet_ids)
    group = lookups.security_group(aws.ec2, vpc_id, names.security_group)
    if not cidrs and not allow_my_ip and ask is not None and not caller_networks(group):
        allow_my_ip = ask(
            f"The scheduler port {CALLER_PORTS[0]} would be closed to this machine (outside "
            f"VPC {vpc_id}). Admit your current public address (asked of "
            f"{config.setting('setup_checkip_url')})?"
        )
    if allow_my_ip:
        cidrs.append(my_address())
    if cidrs and group is not None:  # what the group will admit: its networks and these
        admitted = caller_networks(group)
        check_coverage(
            admitted + cidrs,
            allow_wide_network,
            f"security group {group['GroupId']} admits {', '.join(admitted) or 'no network'}; "
            f"adding {', '.join(cidrs)}",
        )
    check_adoptable(aws, names, group, cidrs, s3_bucket)
    # Next the rule: ECR refuses a secret it cannot use before anything else is created.
    rule = ensure_pull_through_rule(aws, secret)
    resources: list[Resource] = [ensure_service_linked_role(aws)]
    resources.append(ensure_ecs_cluster(aws, names.cluster, notify))
    execution_arn, res = ensure_role(
        aws, names.execution_role, execution_policies(aws, rule is not None)
    )
    resources.append(res)
    task_arn, res = ensure_role(aws, names.task_role, task_policies(aws, names.cluster, s3_bucket))
    resources.append(res)
    resources.append(ensure_log_group(aws, names.log_group))
    resources.append(
        Resource(
            "subnets", f"{len(subnet_ids)} in {vpc_id}", EXISTS, f"zones {', '.join(sorted(zones))}"
        )
    )
    group_id, res = ensure_security_group(aws, names.security_group, vpc_id, cidrs)
    resources.append(res)
    resources.append(ensure_repository(aws, names.repository))
    resources.extend([rule] if rule else [])
    if codebuild is None:
        from ..images.builders import docker_engine

        codebuild = not docker_engine()
    if codebuild:
        resources.append(ensure_codebuild(aws, notify))
    settings = {
        "region": region,
        "ecs-cluster": names.cluster,
        "subnets": subnet_ids,
        "security-groups": [group_id],
        "assign-public-ip": public_ip,
        "execution-role": execution_arn,
        "task-role": task_arn,
        "log-group": names.log_group,
    }
    if rule:
        settings["image-cache"] = rule.name
    path = config_path()
    resources.append(write_config(path, settings))
    # With no new networks, the group admits what it did when read above.
    if not cidrs and not caller_networks(group):
        notify(
            f"The scheduler port {CALLER_PORTS[0]} is closed to every network outside VPC "
            f"{vpc_id}: a client there cannot connect. Rerun with --allow-my-ip or "
            "--allow-cidr <your network> to admit it."
        )
    if any(r.kind == "IAM role" and r.status in (CREATED, UPDATED) for r in resources):
        notify(
            "IAM roles were created or changed: ECS can use them only after IAM has "
            "propagated them (seconds); a cluster started meanwhile retries until then."
        )
    # This process too (later processes read the file): FargateCluster() works now.
    dask.config.update(dask.config.config, {"starburst": settings}, priority="new")
    return SetupResult(region, resources, settings, str(path), fargate_quota(aws))


def check_adoptable(
    aws: SyncClients,
    names: Names,
    group: dict[str, Any] | None,
    cidrs: list[str],
    s3_bucket: str | None,
) -> None:
    """Refuse, before any change, what setup could not apply to resources it did not create.

    Setup never changes a resource without its tag. So ``--s3-bucket`` on such a task
    role, or admitted networks on such a security group, could not be applied; and such a
    role that ECS tasks may not assume would fail every launch.

    Raises
    ------
    ConfigurationError
        Naming the resource, what cannot be applied, and the fix.
    """
    problems = []
    for kind, name in (("execution", names.execution_role), ("task", names.task_role)):
        role = lookups.role(aws.iam, name, tags=True)
        if role is None or is_managed(lookups.tag_dict(role.get("Tags"))):
            continue
        if not trusts_ecs_tasks(role):
            problems.append(
                f"the {kind} role {name} (not created by setup) does not trust "
                "ecs-tasks.amazonaws.com, so ECS could not use it: add that "
                f"principal to its trust policy, or set starburst.{kind}-role "
                "to another name"
            )
        if kind == "task" and s3_bucket:
            problems.append(
                f"--s3-bucket {s3_bucket} cannot be applied: the task role "
                f"{name} was not created by setup, which never changes it; "
                "grant it access to the bucket yourself, or set "
                "starburst.task-role to another name"
            )
    if group is not None and cidrs and not is_managed(lookups.tag_dict(group.get("Tags"))):
        missing = [c for c in cidrs if c not in caller_networks(group)]
        if missing:
            problems.append(
                f"{', '.join(missing)} cannot be admitted: the security group "
                f"{group['GroupId']} ({names.security_group}) was not created by "
                "setup, which never changes it; add the rule for ports "
                f"{CALLER_PORTS[0]}-{CALLER_PORTS[1]} yourself"
            )
    if problems:
        raise ConfigurationError("setup changed nothing: " + "; ".join(problems))


def ensure_codebuild(aws: SyncClients, notify: Callable[[str], None]) -> Resource:
    """The CodeBuild project (``starburst.image-build-project``), its role and its bucket,
    which build images where no local Docker engine runs."""
    from ..images.build import build_bucket
    from ..images.builders import create_codebuild_project

    project = str(config.setting("image_build_project"))
    existed = lookups.codebuild_project(aws.codebuild, project) is not None
    made = create_codebuild_project(aws.session, project, build_bucket(aws.session), notify=notify)
    return Resource(
        "CodeBuild project",
        project,
        EXISTS if existed else CREATED,
        f"bucket {made['bucket']}, role {role_name(made['role_arn'])}",
    )


def fargate_quota(aws: SyncClients) -> float | None:
    """The account's Fargate On-Demand vCPU quota, or ``None`` when it cannot be read."""
    try:
        return lookups.fargate_quota(aws.quotas)
    except Exception:  # noqa: BLE001 - unknown is a fine answer (moto, missing permission)
        return None
