"""TaskLauncher's decisions: batches of ten, the network of every call, what is retried.

ECS is a fake whose answers depend on each request (calls run concurrently); every
request is validated against ECS's model as the real client validates it.
"""

import asyncio

import pytest

from starburst_dask import fargate
from starburst_dask.ecs.launcher import TaskLauncher
from starburst_dask.errors import TaskFailedError

from .stubs import FakeEcs, client_error

SUBNETS = ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002", "subnet-0a1b2c3d4e5f60003"]
GROUPS = ["sg-0a1b2c3d4e5f60001"]
QUOTA_FULL = fargate.QUOTA_FAILURES[0]
TAGS = [{"key": "starburst-dask:cluster", "value": "unit"}]


def all_started(count, call):
    return count, []


def launch(ecs, count, deadline=30.0, **kwargs):
    launcher = TaskLauncher(
        ecs,
        "arn:aws:ecs:us-east-1:123456789012:cluster/starburst-dask",
        "arn:aws:ecs:us-east-1:123456789012:task-definition/starburst-dask:1",
        subnets=SUBNETS,
        security_groups=GROUPS,
        assign_public_ip=False,
        started_by="unit",
        deadline=deadline,
    )
    return asyncio.run(
        launcher.run(
            count,
            command=["dask", "worker"],
            cpu=1024,
            memory=2048,
            environment={"A": "1"},
            tags=TAGS,
            **kwargs,
        )
    )


def test_launches_in_calls_of_ten_each_on_every_subnet():
    ecs = FakeEcs(all_started)
    result = launch(ecs, 25)
    assert sorted(ecs.counts) == [5, 10, 10]
    assert len(result.arns) == len(set(result.arns)) == 25
    assert (result.quota_refused, result.capacity_refused) == (0, 0)
    for call in ecs.calls:  # Fargate spreads each call's tasks over the subnets listed
        assert call["networkConfiguration"] == {
            "awsvpcConfiguration": {
                "subnets": SUBNETS,
                "securityGroups": GROUPS,
                "assignPublicIp": "DISABLED",
            }
        }
        assert call["launchType"] == "FARGATE" and "capacityProviderStrategy" not in call
        assert (call["startedBy"], call["tags"]) == ("unit", TAGS)
        assert call["overrides"]["cpu"] == "1024"


def test_spot_is_placed_by_capacity_provider_strategy():
    ecs = FakeEcs(all_started)
    launch(ecs, 3, capacity_provider="FARGATE_SPOT")
    [call] = ecs.calls
    assert call["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert "launchType" not in call


def test_quota_refusals_are_handed_back_not_retried():
    ecs = FakeEcs(lambda count, call: (count - 3, [QUOTA_FULL] * 3) if count == 10 else (count, []))
    result = launch(ecs, 12)
    assert sorted(ecs.counts) == [2, 10]  # no further call
    assert (len(result.arns), result.quota_refused) == (9, 3)


def test_capacity_failures_are_retried_until_every_task_started():
    def answer(count, call):
        return (count - 2, [fargate.CAPACITY_UNAVAILABLE] * 2) if call == 1 else (count, [])

    ecs = FakeEcs(answer)
    result = launch(ecs, 6)
    assert ecs.counts == [6, 2]  # the retry asks for the two refused only
    assert len(result.arns) == 6


def test_capacity_failures_are_handed_back_when_the_caller_falls_back():
    ecs = FakeEcs(lambda count, call: (count - 2, [fargate.CAPACITY_UNAVAILABLE] * 2))
    result = launch(ecs, 6, capacity_provider="FARGATE_SPOT", retry_capacity=False)
    assert ecs.counts == [6]
    assert (len(result.arns), result.capacity_refused) == (4, 2)


@pytest.mark.parametrize(
    "error",
    [
        client_error("ThrottlingException", "Rate exceeded"),
        # EC2's throttling, which RunTask wraps
        client_error("InvalidParameterException", "RequestLimitExceeded: Request limit exceeded."),
    ],
)
def test_throttled_calls_are_retried(error):
    def answer(count, call):
        if call == 1:
            raise error
        return count, []

    ecs = FakeEcs(answer)
    result = launch(ecs, 4)
    assert ecs.counts == [4, 4]
    assert len(result.arns) == 4


def test_roles_iam_has_not_propagated_yet_are_retried():
    def answer(count, call):
        if call == 1:
            raise client_error(
                "InvalidParameterException",
                f"{fargate.IAM_PROPAGATION_ERRORS[0]}: arn:aws:iam::1:role/x",
            )
        return count, []

    ecs = FakeEcs(answer)
    assert len(launch(ecs, 2).arns) == 2
    assert ecs.counts == [2, 2]


def test_a_refusal_retrying_cannot_mend_fails_at_once_keeping_what_started():
    def answer(count, call):
        if count == 10:
            return count, []
        raise client_error(
            "InvalidParameterException", "Task definition does not support launch_type FARGATE."
        )

    ecs = FakeEcs(answer)
    with pytest.raises(TaskFailedError) as info:
        launch(ecs, 13)
    assert sorted(ecs.counts) == [3, 10]  # no retry
    assert len(info.value.arns) == 10
    assert str(info.value).startswith("10 of 13 tasks started; ECS refused the rest: ")
    assert "does not support launch_type FARGATE" in str(info.value)


def test_a_task_too_large_for_the_account_says_how_to_fix_it():
    ecs = FakeEcs(lambda count, call: (0, [f"{fargate.CPU_ABOVE_LIMIT}"] * count))
    with pytest.raises(TaskFailedError) as info:
        launch(ecs, 2)
    assert fargate.CPU_ABOVE_LIMIT_HINT in str(info.value)
    assert ecs.counts == [2]


def test_capacity_failures_past_the_deadline_fail_naming_it():
    ecs = FakeEcs(lambda count, call: (1, [fargate.CAPACITY_UNAVAILABLE] * (count - 1)))
    with pytest.raises(TaskFailedError) as info:
        launch(ecs, 5, deadline=0)
    assert ecs.counts == [5]  # the first backoff already ends past a deadline of 0 s
    assert len(info.value.arns) == 1
    assert str(info.value).startswith(
        f"1 of 5 tasks started within 0 s; ECS refused the rest: {fargate.CAPACITY_UNAVAILABLE}"
    )


def test_a_request_the_client_refuses_fails_at_once_in_its_words():
    ecs = FakeEcs(all_started)
    launcher = TaskLauncher(
        ecs,
        "c",
        "td",
        subnets=SUBNETS,
        security_groups=GROUPS,
        assign_public_ip=True,
        started_by="unit",
        deadline=30,
    )
    with pytest.raises(TaskFailedError) as info:  # RunTask's tags are "key" and "value"
        asyncio.run(
            launcher.run(
                1,
                command=["x"],
                cpu=256,
                memory=512,
                environment={},
                tags=[{"Key": "a", "Value": "b"}],
            )
        )
    assert 'Unknown parameter in tags[0]: "Key", must be one of: key, value' in str(info.value)
    assert ecs.calls == []
