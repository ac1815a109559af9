"""One-time setup: create or adopt, idempotently, every AWS resource a cluster needs.

Each ``ensure_*`` function looks first and creates only what is missing, tagging what it
creates with :data:`MANAGED_TAG`. A resource that exists without that tag is used as it
is and never changed or deleted: it is not ours. What setup found is written to a dask
config file, so ``FargateCluster()`` needs no arguments afterwards.

Synchronous boto3: this runs from the command line, once.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
import dask.config
import yaml
from botocore.exceptions import ClientError

from .. import config, fargate
from ..aws import propagation
from ..aws.clients import client_config
from ..ecs import network
from ..errors import ConfigurationError, MissingResourceError
from ..images import pull_through
from . import inventory

#: Tag on every resource setup creates; teardown deletes only resources carrying it.
MANAGED_TAG = ("starburst-dask:managed", "true")
#: Name of the security group and ECR repository setup creates.
DEFAULT_NAME = "starburst-dask"
#: File (in the dask config directory) that setup writes.
CONFIG_FILE = "starburst-setup.yaml"
LOG_RETENTION_DAYS = 30
#: The scheduler (8786) and its dashboard (8787).
DASK_PORTS = (8786, 8787)
EXECUTION_POLICY = "starburst-dask-execution"
S3_POLICY = "starburst-dask-s3"
TRUST_ECS_TASKS = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "ecs-tasks.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }],
}
#: What AmazonECSTaskExecutionRolePolicy grants, inline: needs no managed policies
#: (which some accounts restrict, and which moto only knows when told to load them).
EXECUTION_PERMISSIONS = {
    "Version": "2012-10-17",
    "Statement": [{
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
    }],
}

#: ECS's service-linked role: ECS manages tasks' network interfaces and capacity providers
#: through it ("Using service-linked roles for Amazon ECS"). A new account lacks it, and
#: CreateCluster with capacity providers fails until it exists and has propagated.
ECS_SERVICE = "ecs.amazonaws.com"
ECS_SERVICE_LINKED_ROLE = "AWSServiceRoleForECS"
#: How long to wait for ``starburst.setup.checkip-url``, and the most of its answer read.
CHECKIP_TIMEOUT = 10.0
CHECKIP_MAX_BYTES = 64
SECURITY_GROUP_DESCRIPTION = "starburst-dask: dask ports from the caller network only"

CREATED, UPDATED, EXISTS, FOREIGN = "created", "updated", "exists", "exists, not managed"

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Resource:
    """One resource setup looked at: what it is, its name, and what setup did."""

    kind: str
    name: str
    status: str
    detail: str = ""


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
        return {"region": self.region, "changed": self.changed,
                "resources": [dataclasses.asdict(r) for r in self.resources],
                "settings": self.settings, "config_path": self.config_path,
                "fargate_vcpu_quota": self.quota}


@dataclasses.dataclass(frozen=True)
class Names:
    """Names of the resources setup manages, from the ``starburst.*`` config."""

    cluster: str
    execution_role: str
    task_role: str
    log_group: str
    security_group: str = DEFAULT_NAME
    repository: str = DEFAULT_NAME

    @classmethod
    def from_config(cls) -> Names:
        """The configured names (role ARNs are reduced to role names)."""
        def name(key: str) -> str:
            return str(config.setting(key)).rsplit("/", 1)[-1]
        return cls(cluster=name("ecs_cluster"), execution_role=name("execution_role"),
                   task_role=name("task_role"), log_group=str(config.setting("log_group")))


def resolve_region(region: str | None = None) -> str:
    """``region``, else ``starburst.region``, else the AWS SDK's region; validated."""
    region = region or config.setting("region") or boto3.session.Session().region_name
    if not region:
        raise ConfigurationError(
            "no AWS region is configured; pass --region us-east-1 (or another), or set "
            "AWS_DEFAULT_REGION"
        )
    if region not in boto3.session.Session().get_available_regions("ecs"):
        raise ConfigurationError(f"unknown AWS region {region!r}")
    return region


def config_path() -> Path:
    """The file setup writes: ``starburst-setup.yaml`` in the user's dask config directory.

    ``DASK_CONFIG`` wins, as dask itself reads it.
    """
    return Path(os.environ.get("DASK_CONFIG") or dask.config.PATH) / CONFIG_FILE


def is_managed(tags: dict[str, str]) -> bool:
    """Whether a resource's tags (as a dict) mark it as created by setup."""
    return tags.get(MANAGED_TAG[0]) == MANAGED_TAG[1]


def setup(region: str | None = None, *, vpc: str | None = None,
          subnets: list[str] | None = None, allow_cidrs: list[str] | None = None,
          allow_my_ip: bool = False, ask: Callable[[str], bool] | None = None,
          s3_bucket: str | None = None, codebuild: bool = False, names: Names | None = None,
          docker_hub_secret: str | None = None,
          notify: Callable[[str], None] = logger.info) -> SetupResult:
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
        answers it (:func:`my_address`).
    ask : callable, optional
        Asked a yes/no question when neither ``allow_cidrs`` nor ``allow_my_ip`` is given
        and the scheduler port would be closed to every network outside the VPC; a yes
        admits the caller's current public address. ``None``: never ask.
    s3_bucket : str, optional
        A bucket the tasks may read and write (the task role gets no other permission).
    codebuild : bool
        Also create the CodeBuild project, its role and bucket that build images without
        a local Docker engine (:func:`ensure_codebuild`).
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
    region = resolve_region(region)
    names = names or Names.from_config()
    cidrs = check_cidrs(allow_cidrs or [])
    secret = check_docker_hub_secret(docker_hub_secret, region) if docker_hub_secret else None
    aws = Session(region)
    # The network first: a VPC or subnets that cannot hold a cluster stop setup before
    # it creates anything.
    vpc_id = find_vpc(aws, vpc)
    subnet_ids, zones = find_subnets(aws, vpc_id, subnets)
    public_ip = check_routes(aws, vpc_id, subnet_ids)
    group = get_security_group(aws, names.security_group, vpc_id)
    if not cidrs and not allow_my_ip and ask is not None and not caller_networks(group):
        allow_my_ip = ask(
            f"The scheduler port {DASK_PORTS[0]} would be closed to this machine (outside "
            f"VPC {vpc_id}). Admit your current public address (asked of "
            f"{config.setting('setup_checkip_url')})?")
    if allow_my_ip:
        cidrs.append(my_address())
    check_adoptable(aws, names, group, cidrs, s3_bucket)
    # Next the rule: ECR refuses a secret it cannot use before anything else is created.
    rule = ensure_pull_through_rule(aws, secret)
    resources: list[Resource] = [ensure_service_linked_role(aws)]
    resources.append(ensure_ecs_cluster(aws, names.cluster, notify))
    execution_arn, res = ensure_role(
        aws, names.execution_role,
        {EXECUTION_POLICY: execution_permissions(aws, rule is not None)})
    resources.append(res)
    task_policies = {S3_POLICY: s3_policy(s3_bucket)} if s3_bucket else {}
    task_arn, res = ensure_role(aws, names.task_role, task_policies)
    resources.append(res)
    resources.append(ensure_log_group(aws, names.log_group))
    resources.append(Resource("subnets", f"{len(subnet_ids)} in {vpc_id}", EXISTS,
                              f"zones {', '.join(sorted(zones))}"))
    group_id, res = ensure_security_group(aws, names.security_group, vpc_id, cidrs)
    resources.append(res)
    resources.append(ensure_repository(aws, names.repository))
    resources.extend([rule] if rule else [])
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
        notify(f"The scheduler port {DASK_PORTS[0]} is closed to every network outside VPC "
               f"{vpc_id}: a client there cannot connect. Rerun with --allow-my-ip or "
               "--allow-cidr <your network> to admit it.")
    if any(r.kind == "IAM role" and r.status in (CREATED, UPDATED) for r in resources):
        notify("IAM roles were created or changed: ECS can use them only after IAM has "
               "propagated them (seconds); a cluster started meanwhile retries until then.")
    # This process too (later processes read the file): FargateCluster() works now.
    dask.config.update(dask.config.config, {"starburst": settings}, priority="new")
    return SetupResult(region, resources, settings, str(path), fargate_quota(aws))


class Session:
    """boto3 clients for one region, made on first use."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._session = boto3.session.Session(region_name=region)
        self._clients: dict[str, Any] = {}

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._clients:
            name = service.replace("_", "-")
            self._clients[service] = self._session.client(name, config=client_config())
        return self._clients[service]

    def identity(self) -> dict[str, str]:
        """The caller's ``Account`` and ``Arn`` (also a check that the credentials work)."""
        return self.sts.get_caller_identity()


def check_cidrs(cidrs: list[str]) -> list[str]:
    """Validate ``--allow-cidr`` values; refuse the whole internet.

    Raises
    ------
    ConfigurationError
    """
    checked = []
    for cidr in cidrs:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ConfigurationError(f"--allow-cidr {cidr!r} is not a network like "
                                     "203.0.113.7/32") from None
        if network.prefixlen == 0:
            raise ConfigurationError(
                f"--allow-cidr {cidr} would open the dask ports to the whole internet; "
                "pass your own network, e.g. your public IP with /32"
            )
        checked.append(str(network))
    return checked


def my_address() -> str:
    """The caller's current public address as a network (``/32``, or ``/128`` for IPv6).

    Asked of ``starburst.setup.checkip-url`` (AWS's ``https://checkip.amazonaws.com``
    answers the address it sees the request come from, as text).

    Raises
    ------
    ConfigurationError
        When the address cannot be read from there.
    """
    url = str(config.setting("setup_checkip_url"))
    try:
        with urllib.request.urlopen(url, timeout=CHECKIP_TIMEOUT) as response:
            text = response.read(CHECKIP_MAX_BYTES).decode("ascii", "replace").strip()
        address = ipaddress.ip_address(text)
    except (OSError, ValueError) as e:
        raise ConfigurationError(
            f"could not detect your public address from {url} ({e}); pass --allow-cidr "
            "<your public address>/32 instead (config starburst.setup.checkip-url names "
            "the service asked)"
        ) from None
    return str(ipaddress.ip_network(address))


def caller_networks(group: dict[str, Any] | None) -> list[str]:
    """The networks (CIDRs) ``group`` admits to the scheduler port: callers outside the VPC."""
    if group is None:
        return []
    return [r.get("CidrIp") or r.get("CidrIpv6")
            for p in group.get("IpPermissions", [])
            if p["IpProtocol"] in ("-1", "tcp")
            and p.get("FromPort", 0) <= DASK_PORTS[0] <= p.get("ToPort", 65535)
            for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", [])]


def check_adoptable(aws: Session, names: Names, group: dict[str, Any] | None,
                    cidrs: list[str], s3_bucket: str | None) -> None:
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
        role = get_role(aws, name)
        if role is None or is_managed(_tag_dict(role.get("Tags"))):
            continue
        if not trusts_ecs_tasks(role):
            problems.append(f"the {kind} role {name} (not created by setup) does not trust "
                            "ecs-tasks.amazonaws.com, so ECS could not use it: add that "
                            f"principal to its trust policy, or set starburst.{kind}-role "
                            "to another name")
        if kind == "task" and s3_bucket:
            problems.append(f"--s3-bucket {s3_bucket} cannot be applied: the task role "
                            f"{name} was not created by setup, which never changes it; "
                            "grant it access to the bucket yourself, or set "
                            "starburst.task-role to another name")
    if group is not None and cidrs and not is_managed(_tag_dict(group.get("Tags"))):
        missing = [c for c in cidrs if c not in caller_networks(group)]
        if missing:
            problems.append(f"{', '.join(missing)} cannot be admitted: the security group "
                            f"{group['GroupId']} ({names.security_group}) was not created by "
                            "setup, which never changes it; add the rule for ports "
                            f"{DASK_PORTS[0]}-{DASK_PORTS[1]} yourself")
    if problems:
        raise ConfigurationError("setup changed nothing: " + "; ".join(problems))


def s3_policy(bucket: str) -> dict[str, Any]:
    """Read and write access to one bucket: the only permission tasks get."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
             "Resource": f"arn:aws:s3:::{bucket}"},
            {"Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                        "s3:AbortMultipartUpload"],
             "Resource": f"arn:aws:s3:::{bucket}/*"},
        ],
    }


def _code(error: ClientError) -> str:
    return error.response["Error"]["Code"]


def _tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    """AWS tag lists (``Key``/``Value`` or ``key``/``value``) as a dict."""
    return {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in tags or []}


def ecs_cluster(aws: Session, name: str) -> dict[str, Any] | None:
    """The ACTIVE ECS cluster ``name`` with its tags, if any."""
    found = aws.ecs.describe_clusters(clusters=[name], include=["TAGS"])["clusters"]
    active = [c for c in found if c["status"] == "ACTIVE"]
    return active[0] if active else None


def ensure_service_linked_role(aws: Session) -> Resource:
    """ECS's service-linked role, which a new account lacks until its first cluster."""
    if get_role(aws, ECS_SERVICE_LINKED_ROLE) is not None:
        return Resource("IAM service-linked role", ECS_SERVICE_LINKED_ROLE, EXISTS)
    try:
        aws.iam.create_service_linked_role(AWSServiceName=ECS_SERVICE)
    except ClientError as e:  # made meanwhile: "... has been taken in this account"
        if _code(e) != "InvalidInput" or "taken" not in str(e):
            raise
        return Resource("IAM service-linked role", ECS_SERVICE_LINKED_ROLE, EXISTS)
    return Resource("IAM service-linked role", ECS_SERVICE_LINKED_ROLE, CREATED)


def _while_propagating(call: Callable[..., Any], notify: Callable[[str], None],
                       **kwargs: Any) -> Any:
    """``call(**kwargs)``, retried while ECS cannot use its service-linked role yet."""
    return propagation.while_propagating(
        call, fargate.IAM_PROPAGATION_ERRORS,
        f"the ECS service-linked role {ECS_SERVICE_LINKED_ROLE}", notify, **kwargs)


def ensure_ecs_cluster(aws: Session, name: str,
                       notify: Callable[[str], None] = logger.info) -> Resource:
    """The ECS cluster, with the FARGATE and FARGATE_SPOT capacity providers.

    A managed cluster that lacks them gets them added to the providers it has.
    """
    found = ecs_cluster(aws, name)
    if found is None:
        _while_propagating(
            aws.ecs.create_cluster, notify,
            clusterName=name,
            capacityProviders=list(fargate.CAPACITY_PROVIDERS),
            defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
            tags=[{"key": MANAGED_TAG[0], "value": MANAGED_TAG[1]}],
        )
        return Resource("ECS cluster", name, CREATED, "FARGATE, FARGATE_SPOT")
    if not is_managed(_tag_dict(found.get("tags"))):
        return Resource("ECS cluster", name, FOREIGN)
    have = list(found.get("capacityProviders") or [])
    missing = [p for p in fargate.CAPACITY_PROVIDERS if p not in have]
    if missing:
        strategy = found.get("defaultCapacityProviderStrategy") or [
            {"capacityProvider": "FARGATE", "weight": 1}]
        _while_propagating(
            aws.ecs.put_cluster_capacity_providers, notify,
            cluster=name, capacityProviders=have + missing,
            defaultCapacityProviderStrategy=strategy,
        )
        return Resource("ECS cluster", name, UPDATED, f"added {', '.join(missing)}")
    return Resource("ECS cluster", name, EXISTS)


def get_role(aws: Session, name: str) -> dict[str, Any] | None:
    """The IAM role ``name`` (with ``Tags``), if it exists."""
    try:
        role = aws.iam.get_role(RoleName=name)["Role"]
    except ClientError as e:
        if _code(e) == "NoSuchEntity":
            return None
        raise
    if "Tags" not in role:
        role["Tags"] = aws.iam.list_role_tags(RoleName=name)["Tags"]
    return role


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


def ensure_role(aws: Session, name: str,
                policies: dict[str, dict[str, Any]]) -> tuple[str, Resource]:
    """A role ECS tasks can assume, with these inline ``policies`` (put if missing or changed).

    Returns the role's ARN and what was done.
    """
    role = get_role(aws, name)
    if role is None:
        role = aws.iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST_ECS_TASKS),
            Description="starburst-dask tasks", Tags=[dict(zip(("Key", "Value"), MANAGED_TAG,
                                                                strict=True))],
        )["Role"]
        for policy, document in policies.items():
            aws.iam.put_role_policy(RoleName=name, PolicyName=policy,
                                    PolicyDocument=json.dumps(document))
        detail = f"inline policy {', '.join(policies)}" if policies else "no permissions"
        return role["Arn"], Resource("IAM role", name, CREATED, detail)
    if not is_managed(_tag_dict(role.get("Tags"))):
        return role["Arn"], Resource("IAM role", name, FOREIGN)
    added = []
    for policy, document in policies.items():
        try:
            current = aws.iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
        except ClientError as e:
            if _code(e) != "NoSuchEntity":
                raise
            current = None
        if isinstance(current, str):
            current = json.loads(unquote(current))
        if current != document:
            aws.iam.put_role_policy(RoleName=name, PolicyName=policy,
                                    PolicyDocument=json.dumps(document))
            added.append(policy)
    if added:
        return role["Arn"], Resource("IAM role", name, UPDATED, f"policy {', '.join(added)}")
    return role["Arn"], Resource("IAM role", name, EXISTS)


def get_log_group(aws: Session, name: str) -> dict[str, Any] | None:
    """The log group ``name``, if it exists."""
    groups = aws.logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    return next((g for g in groups if g["logGroupName"] == name), None)


def log_group_tags(aws: Session, name: str) -> dict[str, str]:
    """A log group's tags (ListTagsForResource: AWS deprecated ListTagsLogGroup)."""
    group = get_log_group(aws, name)
    if group is None:
        return {}
    # describe_log_groups' ``arn`` ends in ":*"; ``logGroupArn`` is the resource's ARN.
    arn = group.get("logGroupArn") or group["arn"].removesuffix(":*")
    return aws.logs.list_tags_for_resource(resourceArn=arn).get("tags", {})


def ensure_log_group(aws: Session, name: str) -> Resource:
    """The CloudWatch log group for task output, with a retention."""
    group = get_log_group(aws, name)
    if group is None:
        aws.logs.create_log_group(logGroupName=name, tags=dict([MANAGED_TAG]))
        aws.logs.put_retention_policy(logGroupName=name, retentionInDays=LOG_RETENTION_DAYS)
        return Resource("log group", name, CREATED, f"retention {LOG_RETENTION_DAYS} days")
    if not is_managed(log_group_tags(aws, name)):
        return Resource("log group", name, FOREIGN)
    if not group.get("retentionInDays"):
        aws.logs.put_retention_policy(logGroupName=name, retentionInDays=LOG_RETENTION_DAYS)
        return Resource("log group", name, UPDATED, f"retention {LOG_RETENTION_DAYS} days")
    return Resource("log group", name, EXISTS, f"retention {group['retentionInDays']} days")


def find_vpc(aws: Session, vpc: str | None) -> str:
    """The VPC's id (default: the region's default VPC)."""
    filters = ([{"Name": "vpc-id", "Values": [vpc]}] if vpc
               else [{"Name": "is-default", "Values": ["true"]}])
    try:
        vpcs = aws.ec2.describe_vpcs(Filters=filters)["Vpcs"]
    except ClientError as e:
        raise MissingResourceError(f"VPC {vpc}: {e}") from None
    if not vpcs:
        raise MissingResourceError(
            f"VPC {vpc} does not exist in {aws.region}" if vpc else
            f"{aws.region} has no default VPC; pass --vpc and --subnets"
        )
    return vpcs[0]["VpcId"]


def find_subnets(aws: Session, vpc: str, subnets: list[str] | None) -> tuple[list[str],
                                                                            set[str]]:
    """Subnets in at least two availability zones: given ones, or the VPC's defaults.

    Raises
    ------
    MissingResourceError
        When the subnets span fewer than two zones.
    """
    if subnets:
        found = aws.ec2.describe_subnets(SubnetIds=list(subnets))["Subnets"]
        wrong = [s["SubnetId"] for s in found if s["VpcId"] != vpc]
        if wrong:
            raise ConfigurationError(f"subnets {wrong} are not in VPC {vpc}")
    else:
        in_vpc = aws.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
        found = [s for s in in_vpc["Subnets"] if s.get("DefaultForAz")] or in_vpc["Subnets"]
    zones = {s["AvailabilityZone"] for s in found}
    if len(zones) < 2:
        raise MissingResourceError(
            f"the subnets of VPC {vpc} span {len(zones)} availability zone(s); Fargate "
            "needs subnets in at least two to ride out a zone without capacity: pass "
            "--subnets in two or more zones"
        )
    return sorted(s["SubnetId"] for s in found), zones


def read_routes(aws: Session, vpc: str, subnets: list[str]) -> network.Routes:
    """How ``subnets`` of ``vpc`` reach beyond it (route tables and VPC endpoints)."""
    where = [{"Name": "vpc-id", "Values": [vpc]}]
    tables = aws.ec2.describe_route_tables(Filters=where)["RouteTables"]
    endpoints = aws.ec2.describe_vpc_endpoints(Filters=where)["VpcEndpoints"]
    return network.read_routes(aws.region, subnets, tables, endpoints)


def check_routes(aws: Session, vpc: str, subnets: list[str]) -> bool:
    """Whether tasks on ``subnets`` need public IPs; refuse subnets they could not use.

    Raises
    ------
    MissingResourceError
        Naming each subnet without a route to the internet and the VPC endpoints the
        configured image would need there instead.
    """
    routes = read_routes(aws, vpc, subnets)
    public_ip = network.choose_public_ip(routes, "auto")
    problems = network.problems(routes, public_ip, str(config.setting("image")), aws.region)
    if problems:
        raise MissingResourceError(
            "tasks on these subnets could not pull their image or send logs: "
            + "; ".join(problems) + ". Pass --subnets routed to an internet gateway or a "
            "NAT gateway, or create the VPC endpoints named"
        )
    return public_ip


def get_security_group(aws: Session, name: str, vpc: str) -> dict[str, Any] | None:
    """The security group ``name`` in ``vpc``, if it exists."""
    groups = aws.ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": [name]},
    ])["SecurityGroups"]
    return groups[0] if groups else None


def wanted_ingress(group_id: str, cidrs: list[str]) -> list[dict[str, Any]]:
    """The group's ingress: all traffic from itself (the cluster's own tasks), and the
    scheduler and dashboard ports from ``cidrs`` (the caller's networks); nothing else."""
    v4 = [{"CidrIp": c} for c in cidrs if ipaddress.ip_network(c).version == 4]
    v6 = [{"CidrIpv6": c} for c in cidrs if ipaddress.ip_network(c).version == 6]
    return [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]},
            {"IpProtocol": "tcp", "FromPort": DASK_PORTS[0], "ToPort": DASK_PORTS[1],
             "IpRanges": v4, "Ipv6Ranges": v6}]


def _missing_rules(group: dict[str, Any], wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parts of ``wanted`` the group does not have yet."""
    have = group.get("IpPermissions", [])

    def matching(rule: dict[str, Any]) -> list[dict[str, Any]]:
        return [p for p in have if p["IpProtocol"] == rule["IpProtocol"]
                and p.get("FromPort") == rule.get("FromPort")
                and p.get("ToPort") == rule.get("ToPort")]

    missing = []
    for rule in wanted:
        same = matching(rule)
        part = dict(rule)
        for key, field in (("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6"),
                           ("UserIdGroupPairs", "GroupId")):
            present = {r[field] for p in same for r in p.get(key, [])}
            part[key] = [r for r in rule.get(key, []) if r[field] not in present]
        if any(part.get(k) for k in ("IpRanges", "Ipv6Ranges", "UserIdGroupPairs")):
            missing.append({k: v for k, v in part.items() if v != []})
    return missing


def open_to_world(group: dict[str, Any]) -> bool:
    """Whether any ingress rule of ``group`` admits 0.0.0.0/0 or ::/0."""
    return any(r.get("CidrIp") == "0.0.0.0/0" or r.get("CidrIpv6") == "::/0"
               for p in group.get("IpPermissions", [])
               for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", []))


def ensure_security_group(aws: Session, name: str, vpc: str,
                          cidrs: list[str]) -> tuple[str, Resource]:
    """The tasks' security group: all traffic within, dask ports from ``cidrs`` only."""
    group = get_security_group(aws, name, vpc)
    status = EXISTS
    if group is None:
        group_id = aws.ec2.create_security_group(
            GroupName=name, VpcId=vpc,
            Description=SECURITY_GROUP_DESCRIPTION,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                {"Key": MANAGED_TAG[0], "Value": MANAGED_TAG[1]}]}],
        )["GroupId"]
        group, status = {"GroupId": group_id, "IpPermissions": []}, CREATED
    elif not is_managed(_tag_dict(group.get("Tags"))):
        return group["GroupId"], Resource("security group", group["GroupId"], FOREIGN, name)
    missing = _missing_rules(group, wanted_ingress(group["GroupId"], cidrs))
    if missing:
        aws.ec2.authorize_security_group_ingress(GroupId=group["GroupId"],
                                                 IpPermissions=missing)
        status = UPDATED if status == EXISTS else status
    detail = f"{name}: its own tasks; {', '.join(cidrs) or 'no other network'} -> " \
             f"{DASK_PORTS[0]}-{DASK_PORTS[1]}"
    return group["GroupId"], Resource("security group", group["GroupId"], status, detail)


def get_repository(aws: Session, name: str) -> dict[str, Any] | None:
    """The ECR repository ``name``, if it exists."""
    try:
        return aws.ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except ClientError as e:
        if _code(e) == "RepositoryNotFoundException":
            return None
        raise


def repository_tags(aws: Session, arn: str) -> dict[str, str]:
    """An ECR repository's tags."""
    return _tag_dict(aws.ecr.list_tags_for_resource(resourceArn=arn).get("tags"))


def ensure_repository(aws: Session, name: str) -> Resource:
    """An ECR repository for images (same-region ECR pulls are the fastest)."""
    repo = get_repository(aws, name)
    if repo is None:
        repo = aws.ecr.create_repository(
            repositoryName=name, tags=[{"Key": MANAGED_TAG[0], "Value": MANAGED_TAG[1]}],
        )["repository"]
        return Resource("ECR repository", name, CREATED, repo["repositoryUri"])
    if not is_managed(repository_tags(aws, repo["repositoryArn"])):
        return Resource("ECR repository", name, FOREIGN, repo["repositoryUri"])
    return Resource("ECR repository", name, EXISTS, repo["repositoryUri"])


#: A Secrets Manager secret ARN, by part (its resource name: ``secret:<name>-<6 chars>``).
_SECRET_ARN = re.compile(r"arn:aws[\w-]*:secretsmanager:(?P<region>[a-z0-9-]+):"
                         r"(?P<account>\d{12}):secret:(?P<name>.+)")


def check_docker_hub_secret(arn: str, region: str) -> str:
    """``arn``, if ECR can use it for a Docker Hub pull through cache rule in ``region``.

    Raises
    ------
    ConfigurationError
        Not a secret ARN, a name without the prefix ECR requires, or another region's.
    """
    match = _SECRET_ARN.fullmatch(arn)
    if match is None:
        raise ConfigurationError(
            f"--docker-hub-secret {arn!r} is not a Secrets Manager secret ARN; pass the ARN "
            "`aws secretsmanager describe-secret --secret-id <name>` prints")
    if not match["name"].startswith(fargate.PULL_THROUGH_SECRET_PREFIX):
        raise ConfigurationError(
            f"--docker-hub-secret {arn!r}: ECR uses only secrets whose name begins with "
            f"{fargate.PULL_THROUGH_SECRET_PREFIX!r}; create one, e.g. `aws secretsmanager "
            f"create-secret --name {fargate.PULL_THROUGH_SECRET_PREFIX}docker-hub "
            "--secret-string '{\"username\":\"<user>\",\"accessToken\":\"<token>\"}'`")
    if match["region"] != region:
        raise ConfigurationError(
            f"--docker-hub-secret {arn!r} is in {match['region']}; ECR needs the secret in "
            f"the rule's region, {region}: create it there")
    return arn


def get_pull_through_rule(aws: Session, prefix: str) -> dict[str, Any] | None:
    """The pull through cache rule of ``prefix``, or None."""
    try:
        return aws.ecr.describe_pull_through_cache_rules(
            ecrRepositoryPrefixes=[prefix])["pullThroughCacheRules"][0]
    except ClientError as e:
        if _code(e) == "PullThroughCacheRuleNotFoundException":
            return None
        raise


def ensure_pull_through_rule(aws: Session, secret: str | None) -> Resource | None:
    """The Docker Hub pull through cache rule clusters pull through, or None.

    Created with ``secret`` (Docker Hub requires credentials), its secret updated when a
    different one is given; an existing rule is kept without one. None: no rule, and none
    asked for. Rules take no tags: their prefix, :data:`pull_through.RULE_PREFIX`, marks
    them as the project's.
    """
    prefix = pull_through.RULE_PREFIX
    rule = get_pull_through_rule(aws, prefix)
    if rule is not None and rule["upstreamRegistryUrl"] != fargate.DOCKER_HUB_UPSTREAM:
        raise ConfigurationError(
            f"the pull through cache rule {prefix!r} caches {rule['upstreamRegistryUrl']}, "
            "not Docker Hub; delete it (aws ecr delete-pull-through-cache-rule "
            f"--ecr-repository-prefix {prefix}) and rerun setup")
    if rule is None and secret is None:
        return None
    if rule is None:
        aws.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix=prefix, upstreamRegistryUrl=fargate.DOCKER_HUB_UPSTREAM,
            credentialArn=secret)
        return Resource("pull through cache rule", prefix, CREATED, "Docker Hub")
    if secret is not None and rule.get("credentialArn") != secret:
        aws.ecr.update_pull_through_cache_rule(ecrRepositoryPrefix=prefix,
                                               credentialArn=secret)
        return Resource("pull through cache rule", prefix, UPDATED, "Docker Hub")
    return Resource("pull through cache rule", prefix, EXISTS, "Docker Hub")


def execution_permissions(aws: Session, pull_through_cache: bool) -> dict[str, Any]:
    """The execution role's policy: AmazonECSTaskExecutionRolePolicy's actions, and with
    the pull through cache what its first pull of an image needs, on its repositories."""
    if not pull_through_cache:
        return EXECUTION_PERMISSIONS
    repositories = (f"arn:aws:ecr:{aws.region}:{aws.identity()['Account']}:repository/"
                    f"{pull_through.RULE_PREFIX}/*")
    return {**EXECUTION_PERMISSIONS, "Statement": [
        *EXECUTION_PERMISSIONS["Statement"],
        {"Effect": "Allow", "Action": list(fargate.PULL_THROUGH_PERMISSIONS),
         "Resource": repositories},
    ]}


def ensure_codebuild(aws: Session, notify: Callable[[str], None]) -> Resource:
    """The CodeBuild project (``starburst.image-build-project``), its role and its bucket,
    which build images where no local Docker engine runs."""
    from ..images.build import build_bucket
    from ..images.builders import create_codebuild_project

    project = str(config.setting("image_build_project"))
    existed = bool(aws.codebuild.batch_get_projects(names=[project])["projects"])
    made = create_codebuild_project(aws._session, project, build_bucket(aws._session),
                                    notify=notify)
    return Resource("CodeBuild project", project, EXISTS if existed else CREATED,
                    f"bucket {made['bucket']}, role {made['role_arn'].rsplit('/', 1)[-1]}")


def write_config(path: Path, settings: dict[str, Any]) -> Resource:
    """Write ``settings`` under ``starburst:`` to ``path``, unless it holds them already."""
    text = ("# Written by `starburst-dask setup`; rerun it rather than editing.\n"
            + yaml.safe_dump({"starburst": settings}, sort_keys=False))
    if path.exists() and path.read_text() == text:
        return Resource("dask config", str(path), EXISTS)
    status = UPDATED if path.exists() else CREATED
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return Resource("dask config", str(path), status)


def fargate_quota(aws: Session) -> float | None:
    """The account's Fargate On-Demand vCPU quota, or ``None`` when it cannot be read."""
    try:
        client = aws._session.client("service-quotas",
                                     config=client_config(retries={"max_attempts": 1}))
        quota = client.get_service_quota(ServiceCode=fargate.QUOTA_SERVICE_CODE,
                                         QuotaCode=fargate.QUOTA_CODES["FARGATE"])
        return float(quota["Quota"]["Value"])
    except Exception:  # noqa: BLE001 - unknown is a fine answer (moto, missing permission)
        return None


DELETED, KEPT = "deleted", "kept: not managed by starburst-dask"


def managed_resources(region: str | None = None,
                      names: Names | None = None) -> tuple[Session, list[Resource]]:
    """What :func:`teardown` would delete: resources of setup's names that carry its tag.

    Resources of those names without the tag are listed with status :data:`KEPT`.
    """
    aws = Session(resolve_region(region))
    names = names or Names.from_config()
    found: list[Resource] = []

    def add(kind: str, name: str, tags: dict[str, str] | None, detail: str = "") -> None:
        if tags is not None:
            found.append(Resource(kind, name, EXISTS if is_managed(tags) else KEPT, detail))

    cluster = ecs_cluster(aws, names.cluster)
    add("ECS cluster", names.cluster, _tag_dict(cluster.get("tags")) if cluster else None)
    for role_name in (names.execution_role, names.task_role):
        role = get_role(aws, role_name)
        add("IAM role", role_name, _tag_dict(role.get("Tags")) if role else None)
    group = get_log_group(aws, names.log_group)
    add("log group", names.log_group, log_group_tags(aws, names.log_group) if group else None)
    for sg in aws.ec2.describe_security_groups(Filters=[
            {"Name": "group-name", "Values": [names.security_group]}])["SecurityGroups"]:
        add("security group", sg["GroupId"], _tag_dict(sg.get("Tags")), sg["VpcId"])
    repo = get_repository(aws, names.repository)
    add("ECR repository", names.repository,
        repository_tags(aws, repo["repositoryArn"]) if repo else None)
    found.extend(pull_through_resources(aws))
    path = config_path()
    if path.exists():
        found.append(Resource("dask config", str(path), EXISTS))
    return aws, found


def pull_through_resources(aws: Session) -> list[Resource]:
    """The project's pull through cache rule and the repositories ECR made under its
    prefix (its first pull of each image): ours by their name, since neither takes tags
    from setup."""
    prefix = pull_through.RULE_PREFIX
    found = []
    if get_pull_through_rule(aws, prefix) is not None:
        found.append(Resource("pull through cache rule", prefix, EXISTS, "Docker Hub"))
    for page in aws.ecr.get_paginator("describe_repositories").paginate():
        found.extend(Resource("ECR repository", repo["repositoryName"], EXISTS,
                              "pull through cache")
                     for repo in page["repositories"]
                     if repo["repositoryName"].startswith(f"{prefix}/"))
    return found


def teardown(aws: Session, found: list[Resource]) -> list[Resource]:
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
        "ECR repository": lambda r: aws.ecr.delete_repository(repositoryName=r.name,
                                                              force=True),
        "pull through cache rule": lambda r: aws.ecr.delete_pull_through_cache_rule(
            ecrRepositoryPrefix=r.name),
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
            done.append(dataclasses.replace(resource, status="failed",
                                            detail=e.response["Error"].get("Message", str(e))))
    return done


def _delete_ecs_cluster(aws: Session, name: str) -> None:
    """Stop the project's tasks in the ECS cluster, wait until they stop, delete it."""
    stopped = inventory.stop(aws.ecs, inventory.clusters(aws.ecs, [name]),
                             "starburst-dask teardown")
    for i in range(0, len(stopped), fargate.DESCRIBE_TASKS_MAX):
        aws.ecs.get_waiter("tasks_stopped").wait(
            cluster=name, tasks=stopped[i:i + fargate.DESCRIBE_TASKS_MAX],
            WaiterConfig={"Delay": 2, "MaxAttempts": 90})
    aws.ecs.delete_cluster(cluster=name)


def _delete_role(aws: Session, name: str) -> None:
    for policy in aws.iam.list_role_policies(RoleName=name)["PolicyNames"]:
        aws.iam.delete_role_policy(RoleName=name, PolicyName=policy)
    for policy in aws.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        aws.iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    aws.iam.delete_role(RoleName=name)
