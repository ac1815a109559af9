"""Networks wider than a /16 together are refused by setup unless --allow-wide-network,
and doctor fails on a security group that admits them, however its rules add up."""

import json

import dask.config
import pytest
from click.testing import CliRunner
from helpers import private_dask_config

from starburst_dask.cli import main
from starburst_dask.local import LocalFargate

HALVES = ["--allow-cidr", "0.0.0.0/1", "--allow-cidr", "128.0.0.0/1"]


@pytest.fixture(scope="module")
def aws(tmp_path_factory):
    directory = tmp_path_factory.mktemp("dask-config")
    with private_dask_config(directory), LocalFargate(prepare=False) as fargate:
        yield fargate


def cli(*args):
    result = CliRunner().invoke(main, list(args))
    dask.config.refresh()
    return result


def groups(aws):
    """Security groups and the networks each admits, as EC2 describes them."""
    return {
        g["GroupName"]: sorted(
            (p.get("FromPort"), r.get("CidrIp") or r.get("CidrIpv6"))
            for p in g["IpPermissions"]
            for r in p["IpRanges"] + p["Ipv6Ranges"]
        )
        for g in aws.client("ec2").describe_security_groups()["SecurityGroups"]
    }


def security_group_check(*flags):
    result = cli("doctor", "--json", *flags)
    [check] = [c for c in json.loads(result.output)["checks"] if c["name"] == "security group"]
    return result.exit_code, check


def test_two_halves_of_the_internet_are_refused_and_nothing_is_created(aws):
    before = groups(aws)
    result = cli("setup", *HALVES)
    assert result.exit_code == 1
    assert "0.0.0.0/0 (4,294,967,296 IPv4 addresses), more than a /16" in result.output
    assert "--allow-wide-network" in result.output and "--allow-my-ip" in result.output
    assert groups(aws) == before  # EC2: no group, no rule
    assert aws.client("ecs").list_clusters()["clusterArns"] == []
    assert aws.client("iam").list_roles()["Roles"] == []
    # A /16 and one more address are too wide as well; IPv6 counts /64 networks.
    assert cli("setup", "--allow-cidr", "10.0.0.0/16", "--allow-cidr", "10.1.0.0/32").exit_code
    assert cli("setup", "--allow-cidr", "2001:db8::/47").exit_code == 1
    assert groups(aws) == before


def test_doctor_fails_on_rules_added_by_hand_that_together_admit_the_internet(aws):
    assert cli("setup", "--allow-cidr", "203.0.113.0/24").exit_code == 0
    code, check = security_group_check()
    assert check["status"] == "ok" and code == 0
    [group_id] = dask.config.get("starburst.security-groups")
    ec2 = aws.client("ec2")
    added = [  # two rules, each half the internet, one on the scheduler port, one on all
        {
            "IpProtocol": "tcp",
            "FromPort": 8786,
            "ToPort": 8786,
            "IpRanges": [{"CidrIp": "0.0.0.0/1"}],
        },
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "128.0.0.0/1"}]},
    ]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=added)
    code, check = security_group_check()
    assert code == 1 and check["status"] == "fail"
    assert check["detail"] == (
        f"{group_id} admits 0.0.0.0/0 (4,294,967,296 IPv4 addresses), more than a /16 "
        "(65,536 IPv4 addresses) to port 8786"
    )
    assert "--allow-wide-network" in check["fix"]
    code, check = security_group_check("--allow-wide-network")
    assert check["status"] == "warn"

    # Worker ports too: all traffic from half the internet is still far too wide.
    ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=added[:1])
    code, check = security_group_check()
    assert check["status"] == "fail" and "128.0.0.0/1" in check["detail"]
    ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=added[1:])
    ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 8786,
                "ToPort": 8787,
                "IpRanges": [{"CidrIp": "198.51.100.0/24"}],
            }
        ],
    )
    code, check = security_group_check()
    assert check["status"] == "ok" and code == 0


def test_wide_networks_are_admitted_when_asked_for(aws):
    result = cli("setup", *HALVES, "--allow-wide-network")
    assert result.exit_code == 0, result.output
    admitted = groups(aws)["starburst-dask"]
    assert (8786, "0.0.0.0/1") in admitted and (8786, "128.0.0.0/1") in admitted
    code, check = security_group_check()
    assert code == 1 and check["status"] == "fail"
    # Adding to a group already that wide needs the flag too.
    again = cli("setup", "--allow-cidr", "192.0.2.1/32")
    assert again.exit_code == 1 and "admits 203.0.113.0/24" in again.output
    assert (8786, "192.0.2.1/32") not in groups(aws)["starburst-dask"]
