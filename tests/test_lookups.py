"""The AWS access layer: each lookup runs the same requests with a boto3 client and with
an aiobotocore client, against the local Fargate (which validates every request)."""

import asyncio

import pytest
from botocore.exceptions import ClientError

from starburst_dask.aws import lookups
from starburst_dask.aws.clients import AwsClients, SyncClients
from starburst_dask.ecs import network

MISSING_SUBNET = "subnet-0123456789abcdef0"


def both(service, lookup, *args, **kwargs):
    """``lookup`` run with a sync and with an async client of ``service``."""
    sync = getattr(SyncClients("us-east-1"), service)

    async def run_async():
        aws = AwsClients("us-east-1")
        await aws.open()
        try:
            return await lookup.aio(getattr(aws, service), *args, **kwargs)
        finally:
            await aws.close()

    return lookup(sync, *args, **kwargs), asyncio.run(run_async())


def test_sync_and_async_find_the_same_default_network(local_fargate):
    vpc, vpc_async = both("ec2", lookups.vpc)
    assert vpc is not None and vpc == vpc_async and vpc["IsDefault"]
    subnets, subnets_async = both("ec2", lookups.vpc_subnets, vpc["VpcId"], default_for_az=True)
    assert len(subnets) >= 2 and subnets == subnets_async
    ids = [s["SubnetId"] for s in subnets]
    group, group_async = both("ec2", lookups.security_group, vpc["VpcId"], "default")
    assert group is not None and group["GroupId"] == group_async["GroupId"]
    routes, routes_async = both("ec2", lookups.routes, "us-east-1", [vpc["VpcId"]], ids)
    assert routes == routes_async
    assert set(routes.default_route.values()) == {network.IGW}


def test_what_exists_is_found_and_what_does_not_is_none(local_fargate):
    cluster, cluster_async = both("ecs", lookups.ecs_cluster, "starburst-dask")
    assert cluster["clusterArn"] == cluster_async["clusterArn"]
    assert both("ecs", lookups.ecs_cluster, "no-such-cluster") == (None, None)
    assert both("iam", lookups.role, "no-such-role") == (None, None)
    assert both("logs", lookups.log_group, "/no-such-group") == (None, None)


def test_errors_a_lookup_does_not_expect_reach_the_caller(local_fargate):
    for run in (
        lambda: lookups.subnets(SyncClients("us-east-1").ec2, [MISSING_SUBNET]),
        lambda: both("ec2", lookups.subnets, [MISSING_SUBNET]),
    ):
        with pytest.raises(ClientError) as missing:
            run()
        assert lookups.error_code(missing.value) == "InvalidSubnetID.NotFound"
