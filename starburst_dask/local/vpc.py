"""The local Fargate's VPCs: moto's EC2 with real loopback addresses and AWS's default VPC.

Address plan (the one deliberate difference from AWS's address space): every address is
a loopback address, so task processes really bind them and the kernel's firewall can
filter them (``firewall.py``).

- A default VPC has ``127.R.0.0/16`` (``R`` drawn per VPC from 1-127, never one another
  local Fargate on this machine holds) instead of AWS's ``172.31.0.0/16``;
  its default subnets are the first ``/20`` blocks of it, one per availability zone, as
  on AWS. ENI private addresses are allocated in their subnet's CIDR.
- Public addresses (task public IPs, Elastic IPs, so NAT gateways) come from
  ``127.P.0.0/16`` (``P`` drawn per local Fargate from 128-254): "the internet".
- Any other address, ``127.0.0.1`` above all, is outside every VPC: the machine running
  the client, at a public address of its own.

As on AWS, the default VPC has an internet gateway, a main route table sending
``0.0.0.0/0`` to it, and a default security group admitting all traffic from itself.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

from moto.ec2 import urls as moto_ec2_urls
from moto.ec2.exceptions import DefaultVpcAlreadyExists
from moto.ec2.models import EC2Backend, ec2_backends
from moto.ec2.responses import EC2Response

#: Second octets of default VPC CIDRs (127.R.0.0/16) and of public addresses (127.P.x.y).
VPC_OCTETS = range(1, 128)
PUBLIC_OCTETS = range(128, 255)
#: The client machine's own (public) address.
CLIENT_ADDRESS = "127.0.0.1"
#: UDP port on ``127.X.0.1`` whose socket marks block X as one local Fargate's.
CLAIM_PORT = 47999
#: AWS reserves the first four addresses and the last of every subnet.
_RESERVED_HEAD, _RESERVED_TAIL = 4, 1
_random = random.SystemRandom()


class Network:
    """One local Fargate's network: its addresses, and how strictly it is enforced.

    Parameters
    ----------
    failure_delay : float
        Seconds a task without a route to its registry or to CloudWatch Logs stays
        PENDING before it stops, as AWS retries its pulls before giving up.
    enforced : bool
        Whether security groups are enforced (``firewall.py``). When not, a task's public
        address is its private one, so that clients still reach it.
    on_change : callable
        Called after every change to security groups or network interfaces that decides
        who may connect (the firewall rebuilds its rules).
    """

    def __init__(
        self, failure_delay: float, enforced: bool, on_change: Callable[[], None] = lambda: None
    ) -> None:
        self.failure_delay = failure_delay
        self.enforced = enforced
        self.on_change = on_change
        self._lock = threading.Lock()
        self._claims: list[socket.socket] = []
        self._vpc_octets = _random.sample(list(VPC_OCTETS), len(VPC_OCTETS))
        self.public_network = ipaddress.IPv4Network(
            f"127.{self._claim(_random.sample(list(PUBLIC_OCTETS), len(PUBLIC_OCTETS)))}.0.0/16"
        )
        self._public = _hosts(self.public_network)

    def vpc_cidr(self) -> str:
        """A fresh ``127.R.0.0/16`` for a default VPC."""
        with self._lock:
            return f"127.{self._claim(self._vpc_octets)}.0.0/16"

    def close(self) -> None:
        """Release the address blocks for other local Fargates."""
        for claim in self._claims:
            claim.close()
        self._claims.clear()

    def _claim(self, octets: list[int]) -> int:
        """Take the first of ``octets`` no other local Fargate on this machine holds.

        A block is held by a socket bound to its ``127.X.0.1`` (an address AWS reserves in
        every subnet, so no ENI has it) on :data:`CLAIM_PORT`.
        """
        while octets:
            octet = octets.pop()
            claim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                claim.bind((f"127.{octet}.0.1", CLAIM_PORT))
            except OSError:  # another local Fargate's
                claim.close()
                continue
            self._claims.append(claim)
            return octet
        raise RuntimeError("every loopback block is taken by other local Fargates")

    def public_ip(self) -> str:
        """A public address no ENI or Elastic IP of this local Fargate has had."""
        with self._lock:
            return next(self._public)

    def is_public(self, address: str) -> bool:
        """Whether ``address`` is one of this local Fargate's public addresses."""
        return ipaddress.ip_address(address) in self.public_network


_network: Network | None = None


def install(network: Network) -> None:
    """Make moto's EC2 use :class:`LocalEc2Backend` on ``network``, until :func:`uninstall`."""
    global _network
    _network = network
    ec2_backends.backend = LocalEc2Backend
    ec2_backends.clear()


def uninstall() -> None:
    """Restore moto's stock EC2 backend class; release the network's address blocks."""
    global _network
    if _network is not None:
        _network.close()
    _network = None
    ec2_backends.backend = EC2Backend
    ec2_backends.clear()


def network() -> Network:
    """The installed :class:`Network`."""
    if _network is None:
        raise RuntimeError("the local Fargate is not running")
    return _network


def changed() -> None:
    """Tell the installed network that ENIs or security groups changed (if any is)."""
    if _network is not None:  # a task may finish after its local Fargate stopped
        _network.on_change()


def backend(account_id: str, region: str) -> LocalEc2Backend:
    """The EC2 backend of ``account_id`` in ``region``, local while :func:`install` holds."""
    ec2 = ec2_backends[account_id][region]
    if not isinstance(ec2, LocalEc2Backend):
        raise RuntimeError("the local Fargate is not running")
    return ec2


def backends() -> list[LocalEc2Backend]:
    """Every EC2 backend built so far (each account and region)."""
    # install() and uninstall() clear the backends: while installed, every one is local.
    return [
        backend
        for _, _, backend in ec2_backends.iter_backends()
        if isinstance(backend, LocalEc2Backend)
    ]


class LocalEc2Backend(EC2Backend):
    """moto's EC2 with the address plan, AWS's default VPC, and change notifications."""

    @property
    def _url_module(self) -> Any:
        # moto finds a backend's handlers in the urls module next to its class.
        return types.SimpleNamespace(
            url_bases=moto_ec2_urls.url_bases, url_paths={"{0}/": EC2Response.dispatch}
        )

    def create_default_vpc(self) -> Any:
        """AWS's default VPC, in the address plan: IGW route and self-admitting group."""
        if self.describe_vpcs(filters={"is-default": ["true"]}):
            raise DefaultVpcAlreadyExists
        vpc = self.create_vpc(cidr_block=network().vpc_cidr(), is_default=True)
        for zone in self.describe_availability_zones():
            self.create_default_subnet(zone.name)
        gateway = self.create_internet_gateway()
        self.attach_internet_gateway(gateway.id, vpc.id)
        [main] = [
            t for t in self.route_tables.values() if t.vpc_id == vpc.id and t.main_association_id
        ]
        self.create_route(main.id, "0.0.0.0/0", gateway_id=gateway.id)
        group = self.get_default_security_group(vpc.id)
        assert group is not None, "create_vpc makes the VPC's default security group"
        # moto's hints type the ports as str; protocol -1 has none (its own handler passes None).
        no_port: Any = None
        super().authorize_security_group_ingress(
            group.id, "-1", no_port, no_port, [], source_groups=[{"GroupId": group.id}]
        )
        return vpc

    def allocate_private_ip(self, subnet_id: str) -> str:
        """An address of ``subnet_id``'s CIDR no ENI has, outside AWS's reserved ones."""
        subnet = self.get_subnet(subnet_id)
        network = ipaddress.ip_network(subnet.cidr_block)
        taken = {eni.private_ip_address for eni in self.enis.values()}
        first = int(network.network_address) + _RESERVED_HEAD
        last = int(network.broadcast_address) - _RESERVED_TAIL
        for _ in range(1000):
            ip = str(ipaddress.ip_address(_random.randint(first, last)))
            if ip not in taken:
                return ip
        raise RuntimeError(f"no free address left in {subnet_id} ({network})")

    def allocate_address(
        self, domain: str, address: str | None = None, tags: dict[str, str] | None = None
    ) -> Any:
        # Elastic IPs (a NAT gateway's too) are addresses of the local "internet".
        return super().allocate_address(domain, address or network().public_ip(), tags)

    def authorize_security_group_ingress(self, *args: Any, **kwargs: Any) -> Any:
        result = super().authorize_security_group_ingress(*args, **kwargs)
        changed()
        return result

    def revoke_security_group_ingress(self, *args: Any, **kwargs: Any) -> Any:
        result = super().revoke_security_group_ingress(*args, **kwargs)
        changed()
        return result

    def modify_security_group_rules(self, *args: Any, **kwargs: Any) -> Any:
        result = super().modify_security_group_rules(*args, **kwargs)
        changed()
        return result

    def delete_security_group(self, *args: Any, **kwargs: Any) -> Any:
        result = super().delete_security_group(*args, **kwargs)
        changed()
        return result

    def modify_network_interface_attribute(self, *args: Any, **kwargs: Any) -> Any:
        result = super().modify_network_interface_attribute(*args, **kwargs)
        changed()
        return result


def _hosts(network: ipaddress.IPv4Network) -> Iterator[str]:
    """Host addresses of ``network`` from a random one on, skipping .0 and .255."""
    size = network.num_addresses
    start = _random.randrange(size)
    for i in range(size):
        address = network.network_address + (start + i) % size
        if int(address) & 0xFF not in (0, 255) and int(address) & 0xFFFF != 1:  # the claim
            yield str(address)
    raise RuntimeError(f"out of public addresses in {network}")
