"""AWS clients for one cluster, and the read-only checks made before anything is created.

Endpoints, credentials and profiles come from standard AWS configuration
(``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, ...), so the same code talks to AWS and to the
local Fargate.
"""

from __future__ import annotations

import contextlib
from typing import Any

import botocore.session
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from ..ecs import network
from ..errors import ConfigurationError, MissingResourceError
from ..options import ClusterOptions

SETUP_HINT = "run: starburst-dask setup"
#: Every client the project makes names it in its user agent (``app/starburst-dask``), so
#: AWS's request logs, and the local Fargate's record of the project's calls, show them.
APP_ID = "starburst-dask"


def client_config(**options: Any) -> Config:
    """The botocore client configuration of every client the project makes."""
    # botocore-stubs lack Config's user_agent_appid (botocore has it since 1.31).
    return Config(user_agent_appid=APP_ID, **options)  # type: ignore[call-arg]


def aio_client_config() -> AioConfig:
    """:func:`client_config` for the async (aiobotocore) clients."""
    return AioConfig(user_agent_appid=APP_ID)


#: Client attribute -> AWS service.
_SERVICES = {"ecs": "ecs", "ec2": "ec2", "iam": "iam", "logs": "logs",
             "quotas": "service-quotas", "cloudwatch": "cloudwatch"}


class AwsClients:
    """The async AWS clients of one cluster (ECS, EC2, IAM, Logs, Service Quotas, CloudWatch).

    Parameters
    ----------
    region : str
        AWS region the clients talk to.
    """

    def __init__(self, region: str) -> None:
        self.region = region
        self._session = get_session()
        self._stack = contextlib.AsyncExitStack()
        self.ecs: Any = None
        self.ec2: Any = None
        self.iam: Any = None
        self.logs: Any = None
        self.quotas: Any = None
        self.cloudwatch: Any = None

    def check_credentials(self) -> None:
        """Raise :class:`ConfigurationError` when no credentials can be found (no AWS call)."""
        # The sync botocore lookup: reads env, files and metadata endpoints; no AWS API call.
        if botocore.session.get_session().get_credentials() is None:
            raise ConfigurationError(
                "no AWS credentials found; run `aws configure`, set AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or start the local Fargate "
                "with `starburst-dask local`"
            )

    async def open(self) -> None:
        """Create the clients."""
        for name, service in _SERVICES.items():
            client = self._session.create_client(service, region_name=self.region,
                                                 config=aio_client_config())
            setattr(self, name, await self._stack.enter_async_context(client))

    async def close(self) -> None:
        """Close the clients and their connections."""
        await self._stack.aclose()


async def preflight(aws: AwsClients, options: ClusterOptions) -> dict[str, Any]:
    """Check that what a cluster needs exists, and find its network; create nothing.

    Returns
    -------
    dict
        ``cluster_arn``, ``subnets``, ``security_groups``, ``assign_public_ip`` (chosen
        from the subnets' route tables when ``"auto"``), ``execution_role_arn`` and
        ``task_role_arn``.

    Raises
    ------
    MissingResourceError
        Naming the missing resource and how to create it.
    ConfigurationError
        When tasks on the chosen network could not pull their image or send logs.
    """
    clusters = await aws.ecs.describe_clusters(clusters=[options.ecs_cluster])
    active = [c for c in clusters["clusters"] if c["status"] == "ACTIVE"]
    if not active:
        raise MissingResourceError(
            f"ECS cluster {options.ecs_cluster!r} does not exist in {options.region}; "
            f"{SETUP_HINT} (or pass cluster=...)"
        )
    groups = await aws.logs.describe_log_groups(logGroupNamePrefix=options.log_group)
    if not any(g["logGroupName"] == options.log_group for g in groups["logGroups"]):
        raise MissingResourceError(
            f"CloudWatch log group {options.log_group!r} does not exist in {options.region}; "
            f"{SETUP_HINT} (or pass log_group=...)"
        )
    roles = {}
    for key in ("execution_role", "task_role"):
        roles[f"{key}_arn"] = await _role_arn(aws, getattr(options, key), key)
    subnets, groups = await _network(aws, options)
    public_ip = await _public_ip(aws, options, subnets, groups)
    return {"cluster_arn": active[0]["clusterArn"], "subnets": subnets,
            "security_groups": groups, "assign_public_ip": public_ip, **roles}


async def _public_ip(aws: AwsClients, options: ClusterOptions, subnets: list[str],
                     groups: list[str]) -> bool:
    """Whether tasks get public IPs, from the subnets' routes; check they exist and work."""
    found = await _described(aws.ec2.describe_subnets, "SubnetIds", subnets, "subnet")
    await _described(aws.ec2.describe_security_groups, "GroupIds", groups, "security group")
    vpcs = sorted({s["VpcId"] for s in found["Subnets"]})
    where = [{"Name": "vpc-id", "Values": vpcs}]
    tables = await aws.ec2.describe_route_tables(Filters=where)
    endpoints = await aws.ec2.describe_vpc_endpoints(Filters=where)
    routes = network.read_routes(options.region, subnets, tables["RouteTables"],
                                 endpoints["VpcEndpoints"])
    public_ip = network.choose_public_ip(routes, options.assign_public_ip)
    problems = network.problems(routes, public_ip, options.image, options.region)
    if problems:
        raise ConfigurationError(
            "tasks could not pull their image or send their logs: " + "; ".join(problems)
            + ". Use subnets with a route to an internet gateway (and assign_public_ip "
            "True or 'auto') or to a NAT gateway, or add the VPC endpoints named"
        )
    return public_ip


async def _described(call: Any, key: str, ids: list[str], kind: str) -> dict[str, Any]:
    """One Describe call for configured ``ids``; a clear error when some are gone."""
    try:
        return await call(**{key: ids})
    except ClientError as e:
        if not e.response["Error"]["Code"].endswith(".NotFound"):
            raise
        from ..admin.setup import config_path  # setup imports much; only needed here

        raise MissingResourceError(
            f"{e.response['Error']['Message']} ({kind}s come from starburst config, such "
            f"as {config_path()}, which `starburst-dask setup` writes); run "
            "`starburst-dask setup` again to rewrite it, or pass existing ones"
        ) from None


async def _role_arn(aws: AwsClients, role: str, option: str) -> str:
    if role.startswith("arn:"):
        return role
    try:
        return (await aws.iam.get_role(RoleName=role))["Role"]["Arn"]
    except ClientError as e:
        if e.response["Error"]["Code"] != "NoSuchEntity":
            raise
    raise MissingResourceError(
        f"IAM role {role!r} ({option}) does not exist; {SETUP_HINT} (or pass {option}=...)"
    )


async def _network(aws: AwsClients, options: ClusterOptions) -> tuple[list[str], list[str]]:
    """The configured subnets and security groups, or the default VPC's."""
    subnets, groups = list(options.subnets), list(options.security_groups)
    if subnets and groups:
        return subnets, groups
    vpcs = await aws.ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])
    if not vpcs["Vpcs"]:
        raise MissingResourceError(
            f"no subnets or security groups configured and {options.region} has no default "
            f"VPC; {SETUP_HINT} (or pass subnets=[...] and security_groups=[...])"
        )
    vpc = vpcs["Vpcs"][0]["VpcId"]
    if not subnets:
        found = await aws.ec2.describe_subnets(
            Filters=[{"Name": "vpc-id", "Values": [vpc]},
                     {"Name": "default-for-az", "Values": ["true"]}]
        )
        subnets = sorted(s["SubnetId"] for s in found["Subnets"])
    if not groups:
        found = await aws.ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [vpc]},
                     {"Name": "group-name", "Values": ["default"]}]
        )
        groups = [g["GroupId"] for g in found["SecurityGroups"]]
    return subnets, groups
