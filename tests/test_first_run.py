"""A first run on a new account: setup on a fresh local Fargate, then a cluster at once.

The local Fargate here is not prepared: no ECS service-linked role, no roles, no cluster,
and IAM propagates new roles as AWS does (seconds later).
"""

import os

import dask.config
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from distributed import Client
from helpers import wait_until

from starburst_dask import FargateCluster
from starburst_dask.cli import main
from starburst_dask.errors import ConfigurationError
from starburst_dask.local import LocalFargate, pricing
from starburst_dask.setup import MANAGED_TAG


@pytest.fixture
def fresh(tmp_path):
    """A new account (unprepared local Fargate) and a dask config directory of our own."""
    saved = os.environ.get("DASK_CONFIG"), list(dask.config.paths)
    os.environ["DASK_CONFIG"] = str(tmp_path)
    dask.config.paths.append(str(tmp_path))  # dask reads DASK_CONFIG only at import
    try:
        with LocalFargate(prepare=False) as aws:
            yield aws
    finally:
        if saved[0] is None:
            os.environ.pop("DASK_CONFIG", None)
        else:
            os.environ["DASK_CONFIG"] = saved[0]
        dask.config.paths[:] = saved[1]
        dask.config.refresh()


def test_a_new_accounts_first_cluster_with_capacity_providers_fails_as_on_aws(fresh):
    ecs, iam = fresh.client("ecs"), fresh.client("iam")
    with pytest.raises(ClientError) as refused:
        ecs.create_cluster(clusterName="first", capacityProviders=["FARGATE"])
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "Unable to assume the service linked role. Please verify that the ECS service " \
           "linked role exists." in str(refused.value)
    # ECS created its service-linked role meanwhile; creating it again is refused.
    role = iam.get_role(RoleName="AWSServiceRoleForECS")["Role"]
    assert role["Path"] == "/aws-service-role/ecs.amazonaws.com/"
    with pytest.raises(ClientError, match="has been taken in this account"):
        iam.create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    assert ecs.describe_clusters(clusters=["first"])["clusters"] == []


def test_setup_on_a_new_account_then_a_cluster_at_once(fresh, caplog):
    # This machine is the client's network (docs/local-fargate.md: the network).
    result = CliRunner().invoke(main, ["setup", "--allow-cidr", "127.0.0.1/32"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Waiting (up to 60 s) for AWS to propagate the ECS service-linked role" \
        in result.output
    assert "IAM roles were created or changed" in result.output
    dask.config.refresh()
    with (dask.config.set({"starburst.n-workers": 1, "starburst.poll-interval": 0.5}),
          FargateCluster() as cluster, Client(cluster) as client):
        assert client.submit(sum, [1, 2, 3]).result() == 6
    # The roles setup had just made were not usable yet: the launch waited them out.
    assert "ECS cannot use the cluster's IAM roles yet" in caplog.text


def test_setup_adds_fargate_to_an_adopted_clusters_providers(fresh):
    ecs = fresh.client("ecs")
    fresh.client("iam").create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
    ecs.create_cluster(clusterName="starburst-dask",
                       tags=[{"key": MANAGED_TAG[0], "value": MANAGED_TAG[1]}])
    ecs.create_capacity_provider(name="mine", autoScalingGroupProvider={
        "autoScalingGroupArn": "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:"
                               "0a0a0a0a-0000-0000-0000-000000000000:autoScalingGroupName/mine"})
    wait_until(lambda: _providers(ecs, ["mine"]), timeout=30)  # once the new role propagated

    result = CliRunner().invoke(main, ["setup"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [cluster] = ecs.describe_clusters(clusters=["starburst-dask"])["clusters"]
    assert cluster["capacityProviders"] == ["mine", "FARGATE", "FARGATE_SPOT"]


def _providers(ecs, names):
    """Set the cluster's providers; False while ECS cannot use its service-linked role."""
    try:
        ecs.put_cluster_capacity_providers(cluster="starburst-dask", capacityProviders=names,
                                           defaultCapacityProviderStrategy=[])
    except ClientError as e:
        if "Unable to assume the service linked role" not in str(e):
            raise
        return False
    return True


@pytest.mark.parametrize("options, words", [
    ({"name": "c" * 129}, ["1-128 letters", "startedBy"]),
    ({"tags": {f"t{i}": "v" for i in range(49)}}, ["49 tags", "at most 48"]),
    ({"tags": {"k" * 129: "v"}}, ["129 characters", "1 to 128"]),
    ({"tags": {"team": "v" * 257}}, ["257 characters", "at most 256"]),
    ({"tags": {"aws:team": "data"}}, ["tag key 'aws:team'", "reserves"]),
    ({"tags": {"team": "AWS:data"}}, ["tag value 'AWS:data'", "reserves"]),
    ({"environment": {"TOKEN": "x" * 8000}}, ["RunTask overrides", "8192", "TOKEN"]),
])
def test_limits_are_checked_before_any_aws_call(fresh, options, words):
    fresh.reset_counters()
    priced = sum(pricing.calls.values())
    with pytest.raises(ConfigurationError) as bad:
        FargateCluster(region="us-east-1", **options)
    for word in words:
        assert word in str(bad.value)
    assert not fresh.calls and sum(pricing.calls.values()) == priced
