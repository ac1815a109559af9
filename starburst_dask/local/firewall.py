"""Security groups enforced by the kernel: iptables rules on loopback, rebuilt on change.

Every ENI address is a loopback address (``vpc.py``), so the kernel's own firewall can
decide who connects, and task processes cannot bypass it short of changing the rules
(they run as the emulator's user: root, where the firewall is available). Per local
Fargate, one ``filter`` chain (jumped to from ``INPUT``) and one ``nat`` chain (from
``OUTPUT``), named after its process id:

- ``nat``: traffic to a task's public address is DNAT'ed to its private address.
- ``filter``, for traffic to a task's private address, new connections only (security
  groups are stateful): arriving through its public address, it is admitted only from
  sources its groups' CIDR rules admit (group references do not match traffic sent to
  public IPs), never from a private address of a VPC (that traffic would leave through
  a gateway with a public source); sent directly, it is admitted only from the VPC, and
  only from sources its CIDR rules admit or from private addresses of ENIs in a
  referenced group. Everything else is dropped: the SYN gets no answer and the
  connection times out, as behind a security group.

Where iptables cannot be used (not root, not installed) the local Fargate runs without
it: :attr:`Firewall.reason` says why and nothing is enforced.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shutil
import subprocess
import threading
from typing import Any

from . import vpc

logger = logging.getLogger(__name__)

_CHAIN = re.compile(r"^SB(\d+)(?:N|G\d+)?$")
_HOOKS = (("filter", "INPUT", ""), ("nat", "OUTPUT", "N"))
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


class Firewall:
    """The iptables rules of one local Fargate (see the module's docstring)."""

    def __init__(self) -> None:
        self.prefix = f"SB{os.getpid()}"
        self.reason = _unavailable()
        self._lock = threading.Lock()
        self._rules = ""

    @property
    def enabled(self) -> bool:
        """Whether security groups are enforced."""
        return self.reason is None

    def start(self) -> None:
        """Remove chains left by dead local Fargates; create this one's, empty."""
        if not self.enabled:
            return
        stale = [
            (table, chain)
            for table, chain in _chains()
            if (match := _CHAIN.match(chain)) and not _alive(int(match.group(1)))
        ]
        for table, chain in sorted(stale, key=lambda c: len(c[1])):  # hooked chains first
            _remove(table, chain)
        self.stop()
        for table, hook, suffix in _HOOKS:
            _iptables("-t", table, "-N", self.prefix + suffix)
            _iptables("-t", table, "-I", hook, "-j", self.prefix + suffix)

    def stop(self) -> None:
        """Remove this local Fargate's chains."""
        if not self.enabled:
            return
        chains = [
            (table, chain)
            for table, chain in _chains()
            if (match := _CHAIN.match(chain)) and match.group(1) == self.prefix[2:]
        ]
        for table, chain in sorted(chains, key=lambda c: len(c[1])):  # hooked chains first
            _remove(table, chain)
        self._rules = ""

    def sync(self) -> None:
        """Make the rules match EC2's ENIs and security groups now (returns once they do)."""
        if not self.enabled:
            return
        with self._lock:
            rules = self.rules()
            if rules != self._rules:
                subprocess.run(
                    ["iptables-restore", "-w", "--noflush"],
                    input=rules,
                    text=True,
                    check=True,
                    capture_output=True,
                )
                self._rules = rules

    def rules(self) -> str:
        """The ``iptables-restore`` input for every ENI of every VPC."""
        main, nat = self.prefix, self.prefix + "N"
        enis = [
            (eni, ip)
            for backend in vpc.backends()
            for eni in list(backend.enis.values())
            if (ip := eni.private_ip_address) is not None and _loopback(ip)
        ]
        groups: dict[str, list[str]] = {}
        for eni, private in enis:
            for group in eni.group_set:
                groups.setdefault(group.id, []).append(private)
        chain_of = {gid: f"{self.prefix}G{i}" for i, gid in enumerate(sorted(groups))}
        filt = [f"-A {main} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"]
        dnat = []
        for backend in vpc.backends():
            for gateway in backend.nat_gateways.values():
                for address in gateway.address_set:
                    if address.get("publicIp"):  # no unsolicited inbound through a NAT
                        filt.append(f"-A {main} -d {address['publicIp']} -j DROP")
        for eni, private in enis:
            public = eni.public_ip
            network = eni.ec2_backend.get_vpc(eni.subnet.vpc_id).cidr_block
            rules = [r for g in eni.group_set for r in g.ingress_rules]
            to = f"-A {main} -d {private}"
            if public and public != private:
                dnat.append(f"-A {nat} -d {public} -j DNAT --to-destination {private}")
                via = f"{to} -m conntrack --ctorigdst {public}"
                filt.append(f"{via} -s {network} -j DROP")
                filt += [
                    f"{via} -s {r.ip_range['CidrIp']}{_ports(r)} -j ACCEPT"
                    for r in rules
                    if r.ip_range.get("CidrIp")
                ]
                filt.append(f"{via} -j DROP")
            filt.append(f"{to} ! -s {network} -j DROP")
            for rule in rules:
                if rule.ip_range.get("CidrIp"):
                    filt.append(f"{to} -s {rule.ip_range['CidrIp']}{_ports(rule)} -j ACCEPT")
                elif rule.source_group.get("GroupId") in chain_of:
                    filt.append(f"{to}{_ports(rule)} -j {chain_of[rule.source_group['GroupId']]}")
            filt.append(f"{to} -j DROP")
        members = [
            f"-A {chain_of[gid]} -s {ip} -j ACCEPT" for gid, ips in groups.items() for ip in ips
        ]
        declare = [f":{c} - [0:0]" for c in [main, *chain_of.values()]]
        return "\n".join(
            [
                "*filter",
                *declare,
                *members,
                *filt,
                "COMMIT",
                "*nat",
                f":{nat} - [0:0]",
                *dnat,
                "COMMIT",
                "",
            ]
        )


def _ports(rule: Any) -> str:
    """iptables matches for a rule's protocol and ports ("" for all traffic)."""
    protocol = rule.ip_protocol
    if protocol in (None, "-1"):
        return ""
    if protocol in ("tcp", "udp") and rule.from_port is not None and rule.from_port >= 0:
        return f" -p {protocol} --dport {rule.from_port}:{rule.to_port}"
    return f" -p {protocol}"


def _loopback(address: str) -> bool:
    return bool(address) and ipaddress.ip_address(address) in _LOOPBACK


def _unavailable() -> str | None:
    """Why iptables cannot enforce security groups here, or None if it can."""
    if os.name != "posix" or os.geteuid() != 0:
        return "the local Fargate does not run as root"
    missing = [t for t in ("iptables", "iptables-restore") if shutil.which(t) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install iptables)"
    try:
        _iptables("-t", "nat", "-S", "OUTPUT")
    except subprocess.CalledProcessError as error:
        return f"iptables does not work here: {error.stderr.strip()}"
    return None


def _iptables(*args: str) -> str:
    return subprocess.run(
        ["iptables", "-w", *args], check=True, capture_output=True, text=True
    ).stdout


def _chains() -> list[tuple[str, str]]:
    """``(table, chain)`` of every user chain in the filter and nat tables."""
    return [
        (table, line.split()[1])
        for table, _, _ in _HOOKS
        for line in _iptables("-t", table, "-S").splitlines()
        if line.startswith("-N ")
    ]


def _remove(table: str, chain: str) -> None:
    """Delete ``chain``, and the jumps to it from its hook."""
    hook = dict((t, h) for t, h, _ in _HOOKS)[table]
    while (
        subprocess.run(
            ["iptables", "-w", "-t", table, "-D", hook, "-j", chain], capture_output=True
        ).returncode
        == 0
    ):
        pass
    _iptables("-t", table, "-F", chain)
    subprocess.run(["iptables", "-w", "-t", table, "-X", chain], capture_output=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
