"""The VPC and subnets tasks run in: given ones or the region's defaults, in at least two
availability zones, with routes that let tasks pull their image and send their logs."""

from __future__ import annotations

from botocore.exceptions import ClientError

from ..aws import lookups
from ..aws.clients import SyncClients
from ..ecs import network
from ..errors import ConfigurationError, MissingResourceError
from ..options import configured_image


def find_vpc(aws: SyncClients, vpc: str | None) -> str:
    """The VPC's id (default: the region's default VPC)."""
    try:
        found = lookups.vpc(aws.ec2, vpc)
    except ClientError as e:
        raise MissingResourceError(f"VPC {vpc}: {e}") from None
    if found is None:
        raise MissingResourceError(
            f"VPC {vpc} does not exist in {aws.region}"
            if vpc
            else f"{aws.region} has no default VPC; pass --vpc and --subnets"
        )
    return str(found["VpcId"])


def find_subnets(
    aws: SyncClients, vpc: str, subnets: list[str] | None
) -> tuple[list[str], set[str]]:
    """Subnets in at least two availability zones: given ones, or the VPC's defaults.

    Raises
    ------
    MissingResourceError
        When the subnets span fewer than two zones.
    """
    if subnets:
        found = lookups.subnets(aws.ec2, list(subnets))
        wrong = [s["SubnetId"] for s in found if s["VpcId"] != vpc]
        if wrong:
            raise ConfigurationError(f"subnets {wrong} are not in VPC {vpc}")
    else:
        in_vpc = lookups.vpc_subnets(aws.ec2, vpc)
        found = [s for s in in_vpc if s.get("DefaultForAz")] or in_vpc
    zones = {s["AvailabilityZone"] for s in found}
    if len(zones) < 2:
        raise MissingResourceError(
            f"the subnets of VPC {vpc} span {len(zones)} availability zone(s); Fargate "
            "needs subnets in at least two to ride out a zone without capacity: pass "
            "--subnets in two or more zones"
        )
    return sorted(s["SubnetId"] for s in found), zones


def check_routes(aws: SyncClients, vpc: str, subnets: list[str]) -> bool:
    """Whether tasks on ``subnets`` need public IPs; refuse subnets they could not use.

    Raises
    ------
    MissingResourceError
        Naming each subnet without a route to the internet and the VPC endpoints the
        configured image would need there instead.
    """
    routes = lookups.routes(aws.ec2, aws.region, [vpc], subnets)
    public_ip = network.choose_public_ip(routes, "auto")
    problems = network.problems(routes, public_ip, configured_image(), aws.region)
    if problems:
        raise MissingResourceError(
            "tasks on these subnets could not pull their image or send logs: "
            + "; ".join(problems)
            + ". Pass --subnets routed to an internet gateway or a "
            "NAT gateway, or create the VPC endpoints named"
        )
    return public_ip
