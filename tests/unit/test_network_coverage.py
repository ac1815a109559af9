"""How wide networks are together: the union of CIDRs, per task port, against a /16."""

import pytest

from starburst_dask.admin.security_group import check_cidrs, port_admissions, too_wide
from starburst_dask.errors import ConfigurationError


@pytest.mark.parametrize(
    "cidrs, wide",
    [
        (["0.0.0.0/1", "128.0.0.0/1"], True),
        (["10.0.0.0/16"], False),
        (["10.0.0.0/16", "10.0.0.0/17", "10.0.1.7/32"], False),  # overlaps count once
        (["10.0.0.0/16", "10.1.0.0/32"], True),
        (["2001:db8::/48", "203.0.113.7/32"], False),
        (["2001:db8::/47"], True),  # IPv6 in /64 networks: more than a /48's
        (["::/0"], True),
    ],
)
def test_networks_are_too_wide_by_the_addresses_their_union_covers(cidrs, wide):
    assert (too_wide(cidrs) is not None) == wide


def test_allow_cidr_refuses_the_internet_in_pieces_unless_allowed():
    with pytest.raises(ConfigurationError, match="--allow-wide-network"):
        check_cidrs(["0.0.0.0/1", "128.0.0.0/1"])
    assert check_cidrs(["0.0.0.0/1", "128.0.0.0/1"], allow_wide=True) == [
        "0.0.0.0/1",
        "128.0.0.0/1",
    ]
    with pytest.raises(ConfigurationError, match="is not a network"):
        check_cidrs(["10.0.0.0/33"])


def test_rules_add_up_per_port():
    group = {
        "IpPermissions": [
            {
                "IpProtocol": "tcp",
                "FromPort": 8786,
                "ToPort": 8787,
                "IpRanges": [{"CidrIp": "0.0.0.0/1"}],
            },
            {
                "IpProtocol": "tcp",
                "FromPort": 8789,
                "ToPort": 40010,  # the nanny and worker dashboard ports, and beyond
                "IpRanges": [{"CidrIp": "128.0.0.0/1"}],
            },
            {
                "IpProtocol": "udp",
                "FromPort": 8786,
                "ToPort": 8786,
                "IpRanges": [{"CidrIp": "128.0.0.0/1"}],
            },
            {"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-1"}]},
        ]
    }
    # Per task port (8786-8790): ports no task listens on do not count.
    assert port_admissions(group) == [(8786, ["0.0.0.0/1"]), (8789, ["128.0.0.0/1"])]
    group["IpPermissions"].append({"IpProtocol": "-1", "IpRanges": [{"CidrIp": "128.0.0.0/1"}]})
    assert too_wide(dict(port_admissions(group))[8786]) is not None
