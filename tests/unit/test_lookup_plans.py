"""A lookup's plan runs the same calls with a sync and an async client, and AWS errors
reach the plan (which may expect them) or the caller: fakes answer as AWS would."""

import asyncio

import pytest
from botocore.exceptions import ClientError

from starburst_dask.aws import lookups


def no_such_entity(operation):
    return ClientError({"Error": {"Code": "NoSuchEntity", "Message": "not found"}}, operation)


class FakeIam:
    """IAM with one role, ``known``, whose GetRole answer lacks its tags."""

    def __init__(self):
        self.calls = []

    def get_role(self, RoleName):  # noqa: N803 - boto3's parameter name
        self.calls.append(("get_role", RoleName))
        if RoleName != "known":
            raise no_such_entity("GetRole")
        return {"Role": {"RoleName": RoleName, "Arn": f"arn:aws:iam::123456789012:role/{RoleName}"}}

    def list_role_tags(self, RoleName):  # noqa: N803
        self.calls.append(("list_role_tags", RoleName))
        return {"Tags": [{"Key": "starburst-dask:managed", "Value": "true"}]}


class AsyncFakeIam(FakeIam):
    async def get_role(self, RoleName):  # noqa: N803
        return super().get_role(RoleName)

    async def list_role_tags(self, RoleName):  # noqa: N803
        return super().list_role_tags(RoleName)


@pytest.mark.parametrize("tags", [False, True])
def test_sync_and_async_make_the_same_calls_and_answers(tags):
    sync, aio = FakeIam(), AsyncFakeIam()
    found = lookups.role(sync, "known", tags=tags)
    assert found == asyncio.run(lookups.role.aio(aio, "known", tags=tags))
    assert sync.calls == aio.calls
    assert ("list_role_tags", "known") in sync.calls if tags else len(sync.calls) == 1
    assert lookups.tag_dict(found.get("Tags")) == (
        {"starburst-dask:managed": "true"} if tags else {}
    )


def test_an_error_the_plan_expects_is_its_answer():
    assert lookups.role(FakeIam(), "missing") is None
    assert asyncio.run(lookups.role.aio(AsyncFakeIam(), "missing")) is None


def test_an_error_the_plan_does_not_expect_reaches_the_caller():
    class Throttled(FakeIam):
        def get_role(self, RoleName):  # noqa: N803
            raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "GetRole")

    with pytest.raises(ClientError, match="Throttling"):
        lookups.role(Throttled(), "known")
