"""The reads of AWS that the cluster's preflight, setup, teardown, doctor and images share.

Each lookup is written once, as a plan: a generator that yields the calls it makes,
``(operation, parameters)``, and receives their answers (or has their ``ClientError``
thrown in). A :class:`Lookup` runs its plan with a boto3 client, ``lookup(client, ...)``,
or with an aiobotocore client, ``await lookup.aio(client, ...)``: the same requests
either way, validated by botocore. Plans compose with ``yield from lookup.plan(...)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Iterable
from typing import Any, Generic, ParamSpec, TypeVar

import boto3
from botocore.exceptions import ClientError

from .. import config, fargate
from ..ecs import network
from ..errors import ConfigurationError

T = TypeVar("T")
P = ParamSpec("P")
#: One call of a plan: a client's operation (its Python name) and its parameters.
Call = tuple[str, dict[str, Any]]
Plan = Generator[Call, Any, T]


class Lookup(Generic[P, T]):
    """A plan of AWS calls, run with a sync (boto3) or an async (aiobotocore) client."""

    def __init__(self, plan: Callable[P, Plan[T]]) -> None:
        self.plan = plan
        functools.update_wrapper(self, plan)

    def __call__(self, client: Any, *args: P.args, **kwargs: P.kwargs) -> T:
        plan = self.plan(*args, **kwargs)
        answer: Any = None
        error: ClientError | None = None
        while True:
            try:
                operation, params = plan.throw(error) if error else plan.send(answer)
            except StopIteration as done:
                return done.value
            try:
                answer, error = getattr(client, operation)(**params), None
            except ClientError as e:
                answer, error = None, e

    async def aio(self, client: Any, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run the plan with an aiobotocore client."""
        plan = self.plan(*args, **kwargs)
        answer: Any = None
        error: ClientError | None = None
        while True:
            try:
                operation, params = plan.throw(error) if error else plan.send(answer)
            except StopIteration as done:
                return done.value
            try:
                answer, error = await getattr(client, operation)(**params), None
            except ClientError as e:
                answer, error = None, e


def error_code(error: ClientError) -> str:
    """The AWS error code of ``error``."""
    return str(error.response["Error"]["Code"])


def tag_dict(tags: Iterable[dict[str, str]] | None) -> dict[str, str]:
    """AWS tag lists (``Key``/``Value`` or ``key``/``value``) as a dict."""
    return {t.get("Key", t.get("key", "")): t.get("Value", t.get("value", "")) for t in tags or []}


def region(name: str | None = None) -> str:
    """``name``, else ``starburst.region``, else the AWS SDK's region; validated.

    Raises
    ------
    ConfigurationError
        When no region is configured, or it is not one where ECS runs.
    """
    name = name or config.setting("region") or boto3.session.Session().region_name
    if not name:
        raise ConfigurationError(
            "no AWS region is configured; pass --region us-east-1 (or another), or set "
            "AWS_DEFAULT_REGION"
        )
    if name not in boto3.session.Session().get_available_regions("ecs"):
        raise ConfigurationError(f"unknown AWS region {name!r}")
    return str(name)


@Lookup
def caller_identity() -> Plan[dict[str, Any]]:
    """STS: the caller's ``Account`` and ``Arn`` (also a check that the credentials work)."""
    return (yield "get_caller_identity", {})


@Lookup
def ecs_cluster(name: str, tags: bool = False) -> Plan[dict[str, Any] | None]:
    """ECS: the ACTIVE cluster ``name`` (with its ``tags`` when asked), or None."""
    params: dict[str, Any] = {"clusters": [name]}
    if tags:
        params["include"] = ["TAGS"]
    found = yield "describe_clusters", params
    active = [c for c in found["clusters"] if c["status"] == "ACTIVE"]
    return active[0] if active else None


@Lookup
def role(name: str, tags: bool = False) -> Plan[dict[str, Any] | None]:
    """IAM: the role ``name`` (with its ``Tags`` when asked), or None."""
    try:
        found = (yield "get_role", {"RoleName": name})["Role"]
    except ClientError as e:
        if error_code(e) == "NoSuchEntity":
            return None
        raise
    if tags and "Tags" not in found:
        found["Tags"] = (yield "list_role_tags", {"RoleName": name})["Tags"]
    return found


@Lookup
def log_group(name: str) -> Plan[dict[str, Any] | None]:
    """CloudWatch Logs: the log group ``name``, or None."""
    found = yield "describe_log_groups", {"logGroupNamePrefix": name}
    return next((g for g in found["logGroups"] if g["logGroupName"] == name), None)


@Lookup
def log_group_tags(group: dict[str, Any]) -> Plan[dict[str, str]]:
    """CloudWatch Logs: the tags of ``group`` (ListTagsForResource: AWS deprecated
    ListTagsLogGroup)."""
    # describe_log_groups' ``arn`` ends in ":*"; ``logGroupArn`` is the resource's ARN.
    arn = group.get("logGroupArn") or group["arn"].removesuffix(":*")
    return (yield "list_tags_for_resource", {"resourceArn": arn}).get("tags", {})


@Lookup
def vpc(vpc_id: str | None = None) -> Plan[dict[str, Any] | None]:
    """EC2: the VPC ``vpc_id``, or the region's default VPC; None if there is none."""
    filters = (
        [{"Name": "vpc-id", "Values": [vpc_id]}]
        if vpc_id
        else [{"Name": "is-default", "Values": ["true"]}]
    )
    found = yield "describe_vpcs", {"Filters": filters}
    return found["Vpcs"][0] if found["Vpcs"] else None


@Lookup
def subnets(ids: list[str]) -> Plan[list[dict[str, Any]]]:
    """EC2: the subnets ``ids`` (an ``InvalidSubnetID.NotFound`` error if one is gone)."""
    return (yield "describe_subnets", {"SubnetIds": list(ids)})["Subnets"]


@Lookup
def vpc_subnets(vpc_id: str, default_for_az: bool = False) -> Plan[list[dict[str, Any]]]:
    """EC2: the subnets of ``vpc_id``; only each zone's default subnet when asked."""
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
    if default_for_az:
        filters.append({"Name": "default-for-az", "Values": ["true"]})
    return (yield "describe_subnets", {"Filters": filters})["Subnets"]


@Lookup
def security_groups(
    ids: list[str] | None = None, *, vpc_id: str | None = None, name: str | None = None
) -> Plan[list[dict[str, Any]]]:
    """EC2: the security groups ``ids``, or those of ``name`` (in ``vpc_id`` if given)."""
    if ids:
        params: dict[str, Any] = {"GroupIds": list(ids)}
    else:
        filters = [{"Name": "vpc-id", "Values": [vpc_id]}] if vpc_id else []
        filters += [{"Name": "group-name", "Values": [name]}] if name else []
        params = {"Filters": filters}
    return (yield "describe_security_groups", params)["SecurityGroups"]


@Lookup
def security_group(vpc_id: str, name: str) -> Plan[dict[str, Any] | None]:
    """EC2: the security group ``name`` of ``vpc_id`` (``"default"``: the VPC's own), or None."""
    found = yield from security_groups.plan(vpc_id=vpc_id, name=name)
    return found[0] if found else None


@Lookup
def routes(region_name: str, vpc_ids: list[str], subnet_ids: list[str]) -> Plan[network.Routes]:
    """EC2: how ``subnet_ids`` reach beyond their VPCs (route tables and VPC endpoints)."""
    where = [{"Name": "vpc-id", "Values": list(vpc_ids)}]
    tables = yield "describe_route_tables", {"Filters": where}
    endpoints = yield "describe_vpc_endpoints", {"Filters": where}
    return network.read_routes(
        region_name, subnet_ids, tables["RouteTables"], endpoints["VpcEndpoints"]
    )


@Lookup
def repository(name: str) -> Plan[dict[str, Any] | None]:
    """ECR: the repository ``name``, or None."""
    try:
        return (yield "describe_repositories", {"repositoryNames": [name]})["repositories"][0]
    except ClientError as e:
        if error_code(e) == "RepositoryNotFoundException":
            return None
        raise


@Lookup
def repository_tags(arn: str) -> Plan[dict[str, str]]:
    """ECR: a repository's tags."""
    return tag_dict((yield "list_tags_for_resource", {"resourceArn": arn}).get("tags"))


@Lookup
def pull_through_rule(prefix: str) -> Plan[dict[str, Any] | None]:
    """ECR: the pull through cache rule of ``prefix``, or None."""
    try:
        return (yield "describe_pull_through_cache_rules", {"ecrRepositoryPrefixes": [prefix]})[
            "pullThroughCacheRules"
        ][0]
    except ClientError as e:
        if error_code(e) == "PullThroughCacheRuleNotFoundException":
            return None
        raise


@Lookup
def codebuild_project(name: str) -> Plan[dict[str, Any] | None]:
    """CodeBuild: the project ``name``, or None."""
    found = (yield "batch_get_projects", {"names": [name]})["projects"]
    return found[0] if found else None


@Lookup
def fargate_quota() -> Plan[float]:
    """Service Quotas: the account's Fargate On-Demand vCPU quota."""
    quota = yield (
        "get_service_quota",
        {"ServiceCode": fargate.QUOTA_SERVICE_CODE, "QuotaCode": fargate.QUOTA_CODES["FARGATE"]},
    )
    return float(quota["Quota"]["Value"])
