"""Whether a network lets Fargate tasks pull their image and send their logs.

A task reaches its registry and CloudWatch Logs through its own network interface: by a
default route (``0.0.0.0/0``) to an internet gateway, with a public IP; by one to a NAT
gateway; or, for an ECR image of the same region, through the VPC endpoints for
``ecr.api``, ``ecr.dkr`` and ``logs`` plus the S3 gateway endpoint (sources: "Amazon ECS
task networking options for Fargate", "Amazon ECR interface VPC endpoints (AWS
PrivateLink)"). Setup, doctor and the cluster decide from the same reading of the route
tables: plain data from EC2's Describe calls in, a verdict out.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..aws.names import ecr_image

IGW, NAT = "igw", "nat"
#: The endpoints an ECR image (and awslogs) needs where there is no route to the internet.
ECR_ENDPOINTS = ("ecr.api", "ecr.dkr", "s3", "logs")


@dataclasses.dataclass(frozen=True)
class Routes:
    """How each subnet reaches beyond its VPC, and which endpoints serve it."""

    #: subnet id -> IGW, NAT or None: the target of its default route.
    default_route: dict[str, str | None]
    #: subnet id -> services of the VPC's endpoints usable from it ("ecr.api", "s3", ...).
    endpoints: dict[str, frozenset[str]]

    def missing_endpoints(self, subnet: str) -> list[str]:
        """Endpoints an ECR image needs from ``subnet`` without the internet, not there."""
        return [e for e in ECR_ENDPOINTS if e not in self.endpoints[subnet]]


def read_routes(
    region: str,
    subnets: list[str],
    route_tables: list[dict[str, Any]],
    endpoints: list[dict[str, Any]],
) -> Routes:
    """:class:`Routes` from DescribeRouteTables and DescribeVpcEndpoints of the VPC."""
    table_of: dict[str, dict[str, Any]] = {}
    for table in route_tables:
        for association in table.get("Associations", []):
            if association.get("Main"):
                table_of.setdefault("main", table)
            elif association.get("SubnetId"):
                table_of[association["SubnetId"]] = table
    prefix = f"com.amazonaws.{region}."
    routes: dict[str, str | None] = {}
    served: dict[str, frozenset[str]] = {}
    for subnet in subnets:
        table = table_of.get(subnet) or table_of.get("main") or {}
        default: dict[str, Any] = next(
            (
                r
                for r in table.get("Routes", [])
                if r.get("DestinationCidrBlock") == "0.0.0.0/0"
                and r.get("State", "active") == "active"
            ),
            {},
        )
        routes[subnet] = (
            IGW
            if str(default.get("GatewayId", "")).startswith("igw-")
            else NAT
            if default.get("NatGatewayId")
            else None
        )
        services = set()
        for endpoint in endpoints:
            name = endpoint.get("ServiceName", "")
            if (
                not name.startswith(prefix)
                or endpoint.get("State", "available").lower() != "available"
            ):
                continue
            if endpoint.get("VpcEndpointType") == "Gateway":
                if table.get("RouteTableId") in endpoint.get("RouteTableIds", []):
                    services.add(name[len(prefix) :])
            elif endpoint.get("PrivateDnsEnabled", True):
                services.add(name[len(prefix) :])
        served[subnet] = frozenset(services)
    return Routes(routes, served)


def ecr_in_region(image: str, region: str) -> bool:
    """Whether ``image`` is in an ECR registry of ``region`` (which endpoints can serve)."""
    found = ecr_image(image)
    return found is not None and found.region == region


def problems(
    routes: Routes, public_ip: bool, image: str, region: str, services: tuple[str, ...] = ()
) -> list[str]:
    """Why tasks on these subnets could not pull ``image``, send logs, or read their
    secrets from ``services`` (``"secretsmanager"``, ``"ssm"``), one line each."""
    found = []
    ecr = ecr_in_region(image, region)
    for subnet, route in routes.default_route.items():
        if route == NAT or route == IGW and public_ip:
            continue
        missing = routes.missing_endpoints(subnet)
        missing += [s for s in services if s not in routes.endpoints[subnet]]
        if ecr and not missing:
            continue
        where = (
            "routes 0.0.0.0/0 to an internet gateway, which tasks reach only with "
            "a public IP (assign_public_ip is off)"
            if route == IGW
            else "has no route to the internet (no 0.0.0.0/0 route to an internet gateway "
            "or NAT gateway)"
        )
        need = (
            f"the VPC endpoints {', '.join(f'com.amazonaws.{region}.{e}' for e in missing)}"
            if ecr
            else f"an ECR image in {region} and its VPC endpoints (image {image} "
            "is pulled from the internet)"
        )
        found.append(f"subnet {subnet} {where}, and tasks there lack {need}")
    return found


def choose_public_ip(routes: Routes, assign_public_ip: bool | str) -> bool:
    """``assign_public_ip`` as given, or for ``"auto"``: on when a subnet routes to an IGW."""
    if assign_public_ip == "auto":
        return IGW in routes.default_route.values()
    return bool(assign_public_ip)
