"""The tasks' security group: the dask ports among the cluster's own tasks, and the
scheduler's and dashboard's from the caller's networks only."""

from __future__ import annotations

import ipaddress
import urllib.request
from collections.abc import Iterable
from typing import Any

from .. import config
from ..aws import lookups
from ..aws.clients import SyncClients
from ..ecs.tasks import CALLER_PORTS, CLUSTER_PORTS
from ..errors import ConfigurationError
from .managed import CREATED, EXISTS, FOREIGN, MANAGED_TAG, UPDATED, Resource, is_managed

#: Every port a task listens on, which doctor checks (the tasks' ports are pinned).
TASK_PORTS = (CLUSTER_PORTS,)
#: The widest the networks admitted to a task port may be together, unless
#: ``--allow-wide-network``: as many addresses as an IPv4 /16 (65,536); IPv6 counted in
#: /64 networks (each one LAN), as many as a /48 holds (65,536).
WIDEST_PREFIX = {4: 16, 6: 48}
#: What to do about a group that admits more.
WIDE_FIX = (
    f"revoke those ingress rules and admit your own networks (at most a /{WIDEST_PREFIX[4]} "
    "together): starburst-dask setup --allow-cidr <your network>; or pass "
    "--allow-wide-network if you mean it"
)
#: How long to wait for ``starburst.setup.checkip-url``, and the most of its answer read.
CHECKIP_TIMEOUT = 10.0
CHECKIP_MAX_BYTES = 64
SECURITY_GROUP_DESCRIPTION = "starburst-dask: dask ports from the caller network only"


def check_cidrs(cidrs: list[str], allow_wide: bool = False) -> list[str]:
    """Validate ``--allow-cidr`` values; refuse more than :data:`WIDEST_PREFIX` together.

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
        checked.append(str(network))
    check_coverage(checked, allow_wide, f"--allow-cidr {' '.join(checked)}")
    return checked


def check_coverage(cidrs: Iterable[str], allow_wide: bool, what: str) -> None:
    """Refuse networks that together admit more than :data:`WIDEST_PREFIX` allows.

    Raises
    ------
    ConfigurationError
        Naming what they cover and the fix; unless ``allow_wide``.
    """
    wide = too_wide(cidrs)
    if wide and not allow_wide:
        raise ConfigurationError(
            f"{what} would open the dask ports to {wide}: pass only your own networks "
            "(e.g. your public IP/32, or --allow-my-ip), or add --allow-wide-network if you "
            "mean to admit that many"
        )


def too_wide(cidrs: Iterable[str]) -> str | None:
    """What the union of ``cidrs`` covers, when more than :data:`WIDEST_PREFIX` allows."""
    networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    unions: dict[int, list[ipaddress.IPv4Network] | list[ipaddress.IPv6Network]] = {
        4: list(
            ipaddress.collapse_addresses(
                n for n in networks if isinstance(n, ipaddress.IPv4Network)
            )
        ),
        6: list(
            ipaddress.collapse_addresses(
                n for n in networks if isinstance(n, ipaddress.IPv6Network)
            )
        ),
    }
    for version, prefix in WIDEST_PREFIX.items():
        union = unions[version]
        bits = 32 if version == 4 else 128
        covered = sum(n.num_addresses for n in union)
        if covered > 2 ** (bits - prefix):
            shown = ", ".join(map(str, union[:3])) + (", ..." if len(union) > 3 else "")
            return (
                f"{shown} ({_count(covered, version)}), more than a /{prefix} "
                f"({_count(2 ** (bits - prefix), version)})"
            )
    return None


def _count(addresses: int, version: int) -> str:
    if version == 4:
        return f"{addresses:,} IPv4 addresses"
    return f"{addresses >> 64:,} IPv6 /64 networks"


def port_admissions(group: dict[str, Any]) -> list[tuple[int, list[str]]]:
    """The networks (CIDRs) ``group`` admits to each task port (:data:`TASK_PORTS`), over
    all its rules: one entry per run of ports the same rules cover, by its first port."""
    rules = [
        (
            p.get("FromPort", 0) if p["IpProtocol"] == "tcp" else 0,
            p.get("ToPort", 65535) if p["IpProtocol"] == "tcp" else 65535,
            [
                r.get("CidrIp") or r.get("CidrIpv6")
                for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", [])
            ],
        )
        for p in group.get("IpPermissions", [])
        if p["IpProtocol"] in ("-1", "tcp")
    ]
    found = []
    for first, last in TASK_PORTS:
        edges = {first} | {
            port for low, high, _ in rules for port in (low, high + 1) if first <= port <= last
        }
        for port in sorted(edges):
            cidrs = [c for low, high, ranges in rules if low <= port <= high for c in ranges]
            if cidrs:
                found.append((port, cidrs))
    return found


def wide_admission(groups: list[dict[str, Any]]) -> str | None:
    """The first of ``groups`` whose rules admit networks too wide to a task port, said."""
    for group in groups:
        for port, cidrs in port_admissions(group):
            wide = too_wide(cidrs)
            if wide:
                return f"{group['GroupId']} admits {wide} to port {port}"
    return None


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
        and p.get("FromPort", 0) <= CALLER_PORTS[0] <= p.get("ToPort", 65535)
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
    """The group's ingress: the tasks' ports from itself (the cluster's own tasks), and the
    scheduler and dashboard ports from ``cidrs`` (the caller's networks); nothing else."""
    v4 = [{"CidrIp": c} for c in cidrs if ipaddress.ip_network(c).version == 4]
    v6 = [{"CidrIpv6": c} for c in cidrs if ipaddress.ip_network(c).version == 6]
    return [
        {
            "IpProtocol": "tcp",
            "FromPort": CLUSTER_PORTS[0],
            "ToPort": CLUSTER_PORTS[1],
            "UserIdGroupPairs": [{"GroupId": group_id}],
        },
        {
            "IpProtocol": "tcp",
            "FromPort": CALLER_PORTS[0],
            "ToPort": CALLER_PORTS[1],
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
    """The tasks' security group: the tasks' ports within, the scheduler's and dashboard's
    from ``cidrs`` only. All traffic within, as setup allowed before the ports were
    pinned, is narrowed to them."""
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
    everything_within = [
        {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group["GroupId"]}]}
        for p in group.get("IpPermissions", [])
        if p["IpProtocol"] == "-1"
        and any(g.get("GroupId") == group["GroupId"] for g in p.get("UserIdGroupPairs", []))
    ]
    if everything_within:
        aws.ec2.revoke_security_group_ingress(
            GroupId=group["GroupId"], IpPermissions=everything_within[:1]
        )
        status = UPDATED
    detail = (
        f"{name}: its own tasks -> {CLUSTER_PORTS[0]}-{CLUSTER_PORTS[1]}; "
        f"{', '.join(cidrs) or 'no other network'} -> {CALLER_PORTS[0]}-{CALLER_PORTS[1]}"
    )
    return group["GroupId"], Resource("security group", group["GroupId"], status, detail)
