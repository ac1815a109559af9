"""The tasks' security group: all traffic among the cluster's own tasks, and the dask
ports from the caller's networks only."""

from __future__ import annotations

import ipaddress
import urllib.request
from typing import Any

from .. import config
from ..aws import lookups
from ..aws.clients import SyncClients
from ..errors import ConfigurationError
from .managed import CREATED, EXISTS, FOREIGN, MANAGED_TAG, UPDATED, Resource, is_managed

#: The scheduler (8786) and its dashboard (8787).
DASK_PORTS = (8786, 8787)
#: How long to wait for ``starburst.setup.checkip-url``, and the most of its answer read.
CHECKIP_TIMEOUT = 10.0
CHECKIP_MAX_BYTES = 64
SECURITY_GROUP_DESCRIPTION = "starburst-dask: dask ports from the caller network only"


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
            raise ConfigurationError(
                f"--allow-cidr {cidr!r} is not a network like 203.0.113.7/32"
            ) from None
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
    return [
        r.get("CidrIp") or r.get("CidrIpv6")
        for p in group.get("IpPermissions", [])
        if p["IpProtocol"] in ("-1", "tcp")
        and p.get("FromPort", 0) <= DASK_PORTS[0] <= p.get("ToPort", 65535)
        for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", [])
    ]


def open_to_world(group: dict[str, Any]) -> bool:
    """Whether any ingress rule of ``group`` admits 0.0.0.0/0 or ::/0."""
    return any(
        r.get("CidrIp") == "0.0.0.0/0" or r.get("CidrIpv6") == "::/0"
        for p in group.get("IpPermissions", [])
        for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", [])
    )


def wanted_ingress(group_id: str, cidrs: list[str]) -> list[dict[str, Any]]:
    """The group's ingress: all traffic from itself (the cluster's own tasks), and the
    scheduler and dashboard ports from ``cidrs`` (the caller's networks); nothing else."""
    v4 = [{"CidrIp": c} for c in cidrs if ipaddress.ip_network(c).version == 4]
    v6 = [{"CidrIpv6": c} for c in cidrs if ipaddress.ip_network(c).version == 6]
    return [
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]},
        {
            "IpProtocol": "tcp",
            "FromPort": DASK_PORTS[0],
            "ToPort": DASK_PORTS[1],
            "IpRanges": v4,
            "Ipv6Ranges": v6,
        },
    ]


def _missing_rules(group: dict[str, Any], wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The parts of ``wanted`` the group does not have yet."""
    have = group.get("IpPermissions", [])

    def matching(rule: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            p
            for p in have
            if p["IpProtocol"] == rule["IpProtocol"]
            and p.get("FromPort") == rule.get("FromPort")
            and p.get("ToPort") == rule.get("ToPort")
        ]

    missing = []
    for rule in wanted:
        same = matching(rule)
        part = dict(rule)
        for key, field in (
            ("IpRanges", "CidrIp"),
            ("Ipv6Ranges", "CidrIpv6"),
            ("UserIdGroupPairs", "GroupId"),
        ):
            present = {r[field] for p in same for r in p.get(key, [])}
            part[key] = [r for r in rule.get(key, []) if r[field] not in present]
        if any(part.get(k) for k in ("IpRanges", "Ipv6Ranges", "UserIdGroupPairs")):
            missing.append({k: v for k, v in part.items() if v != []})
    return missing


def ensure_security_group(
    aws: SyncClients, name: str, vpc: str, cidrs: list[str]
) -> tuple[str, Resource]:
    """The tasks' security group: all traffic within, dask ports from ``cidrs`` only."""
    group = lookups.security_group(aws.ec2, vpc, name)
    status = EXISTS
    if group is None:
        group_id = aws.ec2.create_security_group(
            GroupName=name,
            VpcId=vpc,
            Description=SECURITY_GROUP_DESCRIPTION,
            TagSpecifications=[
                {
                    "ResourceType": "security-group",
                    "Tags": [{"Key": MANAGED_TAG[0], "Value": MANAGED_TAG[1]}],
                }
            ],
        )["GroupId"]
        group, status = {"GroupId": group_id, "IpPermissions": []}, CREATED
    elif not is_managed(lookups.tag_dict(group.get("Tags"))):
        return group["GroupId"], Resource("security group", group["GroupId"], FOREIGN, name)
    missing = _missing_rules(group, wanted_ingress(group["GroupId"], cidrs))
    if missing:
        aws.ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=missing)
        status = UPDATED if status == EXISTS else status
    detail = (
        f"{name}: its own tasks; {', '.join(cidrs) or 'no other network'} -> "
        f"{DASK_PORTS[0]}-{DASK_PORTS[1]}"
    )
    return group["GroupId"], Resource("security group", group["GroupId"], status, detail)
