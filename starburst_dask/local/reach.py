"""What a task's network interface can reach, and how AWS stops a task that cannot pull.

A Fargate task (platform 1.4.0) pulls its image, gets registry credentials and sends its
logs through its own ENI. It reaches the internet through a default route
(``0.0.0.0/0``) to an internet gateway, if the ENI has a public IP, or to a NAT gateway
(itself in a subnet routed to an internet gateway). Without one, it reaches only the
AWS services its VPC has endpoints for: ECR through the ``ecr.api`` and ``ecr.dkr``
interface endpoints plus the S3 gateway endpoint (image layers live in S3), CloudWatch
Logs through the ``logs`` interface endpoint. Images of other registries need the
internet. Sources: "Amazon ECS task networking options for Fargate", "Amazon ECR
interface VPC endpoints (AWS PrivateLink)", "Amazon ECS stopped task error messages",
"CannotPullContainer task errors in Amazon ECS" (Amazon ECS Developer Guide).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

#: ``dial tcp <address>:443``: an address each host resolves to (AWS's texts carry the one
#: resolved at the time; these stand for them).
_DOCKER_HUB = "registry-1.docker.io"
_RESOLVED = {_DOCKER_HUB: "44.205.64.79"}
_AWS_ADDRESS = "52.46.0.10"
#: The stopped reasons AWS gives for each missing path (timeouts after its retries).
REGISTRY_AUTH = "unable to retrieve ecr registry auth"
REGISTRY_AUTH_TIMEOUT = (
    "ResourceInitializationError: unable to pull secrets or registry auth: execution "
    "resource retrieval failed: unable to retrieve ecr registry auth: service call has "
    "been retried 3 time(s): RequestError: send request failed caused by: Post "
    '"https://api.ecr.{region}.amazonaws.com/": dial tcp {address}:443: i/o timeout. '
    "Please check your task network configuration."
)
LOGS_TIMEOUT = (
    "ResourceInitializationError: failed to validate logger args: create stream has been "
    "retried 1 times: failed to create Cloudwatch log stream: RequestError: send request "
    'failed caused by: Post "https://logs.{region}.amazonaws.com/": dial tcp '
    "{address}:443: i/o timeout : exit status 1"
)
MANIFEST_TIMEOUT = (
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to "
    'resolve ref {ref}: failed to do request: Head "https://{host}/v2/{name}/manifests/'
    '{reference}": dial tcp {address}:443: i/o timeout'
)
LAYER_TIMEOUT = (
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to "
    "copy: httpReadSeeker: failed open: failed to do request: Get "
    '"https://prod-{region}-starport-layer-bucket.s3.{region}.amazonaws.com/": dial tcp '
    "{address}:443: i/o timeout"
)
_ECR_HOST = re.compile(r"^\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com$")


@dataclasses.dataclass(frozen=True)
class Egress:
    """Where traffic from one ENI can go beyond its VPC."""

    #: The public address its internet traffic leaves from (its own public IP, or its NAT
    #: gateway's), or None: no route to the internet.
    internet_source: str | None
    #: AWS services reachable through VPC endpoints: "ecr.api", "ecr.dkr", "logs", "s3".
    endpoints: frozenset[str]


def egress(ec2: Any, subnet_id: str, public_ip: str | None) -> Egress:
    """What an ENI in ``subnet_id`` with ``public_ip`` can reach, from moto's EC2 state."""
    subnet = ec2.get_subnet(subnet_id)
    table = route_table(ec2, subnet_id)
    target = _default_route(table)
    source = None
    if target is not None and target.gateway is not None and target.gateway.id.startswith("igw-"):
        source = public_ip
    elif target is not None and target.nat_gateway is not None:
        source = _nat_address(ec2, target.nat_gateway)
    prefix = f"com.amazonaws.{ec2.region_name}."
    endpoints = set()
    for endpoint in ec2.vpc_end_points.values():
        if endpoint.vpc_id != subnet.vpc_id or not endpoint.service_name.startswith(prefix):
            continue
        service = endpoint.service_name[len(prefix) :]
        if (endpoint.vpc_endpoint_type or "Gateway") == "Gateway":
            if table is not None and table.id in (endpoint.route_table_ids or []):
                endpoints.add(service)
        elif endpoint.private_dns_enabled is not False:  # the default names resolve to it
            endpoints.add(service)
    return Egress(source, frozenset(endpoints))


def route_table(ec2: Any, subnet_id: str) -> Any:
    """The subnet's route table: its explicit association, else its VPC's main table."""
    vpc_id = ec2.get_subnet(subnet_id).vpc_id
    tables = [t for t in ec2.route_tables.values() if t.vpc_id == vpc_id]
    for table in tables:
        if subnet_id in table._associations.values():
            return table
    return next((t for t in tables if t.main_association_id), None)


def _default_route(table: Any) -> Any:
    if table is None:
        return None
    return next((r for r in table.routes if r.destination_cidr_block == "0.0.0.0/0"), None)


def _nat_address(ec2: Any, nat: Any) -> str | None:
    """A NAT gateway's public address, if it has one and its subnet reaches an IGW."""
    if nat.state != "available" or nat.connectivity_type == "private":
        return None
    route = _default_route(route_table(ec2, nat.subnet_id))
    if route is None or route.gateway is None or not route.gateway.id.startswith("igw-"):
        return None
    return next((a.get("publicIp") for a in nat.address_set if a.get("publicIp")), None)


def start_failure(
    egress: Egress, region: str, image: str, awslogs_region: str | None
) -> str | None:
    """Why a task with ``egress`` cannot start, in AWS's words; None if it can.

    In the order Fargate prepares a task: registry credentials, the log stream, the pull.
    ``awslogs_region`` is the region of its awslogs log group, or None without awslogs.
    """
    internet = egress.internet_source is not None
    host, name, reference = parse(image)
    match = _ECR_HOST.match(host)
    local = match is not None and match.group(1) == region  # endpoints serve their region
    reachable = internet or local and "ecr.api" in egress.endpoints
    if match and not reachable:
        return REGISTRY_AUTH_TIMEOUT.format(region=match.group(1), address=_AWS_ADDRESS)
    if awslogs_region and not (internet or awslogs_region == region and "logs" in egress.endpoints):
        return LOGS_TIMEOUT.format(region=awslogs_region, address=_AWS_ADDRESS)
    if internet:
        return None
    if match and local and "ecr.dkr" in egress.endpoints:
        if "s3" in egress.endpoints:
            return None
        return LAYER_TIMEOUT.format(region=region, address=_AWS_ADDRESS)
    ref_host = "docker.io" if host == _DOCKER_HUB else host
    ref = image if match else f"{ref_host}/{name}:{reference}"
    return MANIFEST_TIMEOUT.format(
        ref=ref,
        host=host,
        name=name,
        reference=reference,
        address=_RESOLVED.get(host, _AWS_ADDRESS),
    )


def parse(image: str) -> tuple[str, str, str]:
    """``(registry host, repository, tag or digest)`` as Docker resolves a reference."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = "docker.io", image
    if "@" in path:
        path, reference = path.split("@", 1)
    elif ":" in path.rsplit("/", 1)[-1]:
        path, reference = path.rsplit(":", 1)
    else:
        reference = "latest"
    if host == "docker.io":
        host = _DOCKER_HUB
        path = path if "/" in path else f"library/{path}"
    return host, path, reference
