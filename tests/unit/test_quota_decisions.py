"""The vCPU quota decisions: what fits, the deadline, quota and usage as AWS answers them."""

import asyncio
import datetime
import logging
import math

import pytest
from botocore.stub import ANY

from starburst_dask import fargate
from starburst_dask.ecs.quota import (
    Deadline,
    QuotaGovernor,
    QuotaStatus,
    fits,
    quota_error,
    request_increase,
)
from starburst_dask.ecs.usage import Holding, ProjectUsage, current, peak
from starburst_dask.errors import ConfigurationError

from . import stubs
from .stubs import FakeClock, stubbed

ON_DEMAND = "FARGATE"
IDS = {"ServiceCode": "fargate", "QuotaCode": fargate.QUOTA_CODES[ON_DEMAND]}


def quota_answer(value, provider=ON_DEMAND):
    return {
        "Quota": {
            "ServiceCode": "fargate",
            "QuotaCode": fargate.QUOTA_CODES[provider],
            "QuotaName": fargate.QUOTA_NAMES[provider],
            "Value": value,
        }
    }


def usage_answer(value=None, timestamp=None):
    return {
        "MetricDataResults": [
            {
                "Id": "usage",
                "Label": fargate.USAGE_METRIC,
                "Timestamps": [] if value is None else [timestamp],
                "Values": [] if value is None else [value],
                "StatusCode": "Complete",
            }
        ]
    }


USAGE_QUERY = {
    "MetricDataQueries": [
        {
            "Id": "usage",
            "ReturnData": True,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/Usage",
                    "MetricName": "ResourceCount",
                    "Dimensions": fargate.usage_dimensions(ON_DEMAND),
                },
                "Period": 60,
                "Stat": "Maximum",
            },
        }
    ],
    "StartTime": ANY,
    "EndTime": ANY,
    "ScanBy": "TimestampDescending",
}


def governed(answers):
    """Run ``answers(governor, quotas, cloudwatch)`` against stubbed clients."""

    async def run():
        async with stubbed("service-quotas", "cloudwatch") as [(quotas, q), (cloudwatch, c)]:
            governor = QuotaGovernor(quotas, cloudwatch, clock=lambda: NOW)
            return await answers(governor, q, c)

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("quota", "usage", "vcpus", "expected"),
    [
        (16, 0, 4, 4),
        (16, 14, 4, 0),  # less than one task of headroom
        (16, 20, 1, 0),  # usage above the quota (others' tasks): nothing, never negative
        (1, 0.4, 0.2, 3),  # 0.6 / 0.2 is 2.9999999999999996 in floating point: still 3
        (6, 1.5, 0.25, 18),
    ],
)
def test_fits_counts_whole_tasks_in_the_headroom(quota, usage, vcpus, expected):
    assert fits(QuotaStatus(ON_DEMAND, quota=quota, usage=usage), vcpus) == expected


def test_an_unknown_quota_fits_everything():
    status = QuotaStatus(ON_DEMAND)
    assert math.isinf(status.quota)
    assert fits(status, 16) == 2**31
    assert "quota unknown" in str(status)


def test_deadline_runs_on_its_clock():
    clock = FakeClock()
    deadline = Deadline(30, clock=clock)
    assert (deadline.remaining, deadline.expired) == (30, False)
    clock.advance(29.5)
    assert deadline.remaining == pytest.approx(0.5) and not deadline.expired
    clock.advance(0.5)
    assert deadline.expired and deadline.remaining == 0
    clock.advance(100)
    assert deadline.remaining == 0 and deadline.elapsed == pytest.approx(130)


NOW = datetime.datetime(2026, 11, 30, 4, 30, 30, tzinfo=datetime.timezone.utc)
MINUTE = NOW - datetime.timedelta(seconds=30)  # the latest datapoint's minute began


def at(seconds):
    """``seconds`` after the datapoint's minute began."""
    return MINUTE + datetime.timedelta(seconds=seconds)


def described(arn, cluster, cpu, created, stopped=None):
    """A task of the project as DescribeTasks gives it with its tags."""
    task = {
        "taskArn": arn,
        "cpu": str(cpu),
        "lastStatus": "STOPPED" if stopped else "RUNNING",
        "createdAt": created,
        "tags": [
            {"key": "starburst-dask:cluster", "value": cluster},
            {"key": "starburst-dask:role", "value": "worker"},
        ],
    }
    return {**task, "stoppedAt": stopped} if stopped else task


def test_usage_is_the_metric_less_the_projects_peak_in_its_minute_plus_the_projects_now():
    """The metric is a per-minute maximum: tasks of the project (this cluster's and
    another's) that stopped within its minute stay in it; ECS knows them exactly."""
    other, mine, new = stubs.task_arn(), stubs.task_arn(), stubs.task_arn()
    tasks = [
        described(other, "other", 4096, at(-300), stopped=at(10)),  # closed 20 s ago
        described(mine, "mine", 1024, at(-200)),
    ]

    async def run():
        async with stubbed("service-quotas", "cloudwatch", "ecs") as pairs:
            [(quotas, q), (cloudwatch, c), (ecs, e)] = pairs
            # new: launched just now, not listed yet
            live = {mine: (ON_DEMAND, 1.0, at(-200)), new: (ON_DEMAND, 2.0, NOW)}
            project = ProjectUsage(ecs, "starburst-dask", lambda: live)
            governor = QuotaGovernor(quotas, cloudwatch, project, clock=lambda: NOW)
            q.add_response("get_service_quota", quota_answer(16.0), IDS)
            c.add_response("get_metric_data", usage_answer(7.0, at(0)), USAGE_QUERY)
            for status in ("RUNNING", "STOPPED"):
                arns = [other] if status == "STOPPED" else [mine]
                e.add_response(
                    "list_tasks",
                    {"taskArns": arns},
                    {"cluster": "starburst-dask", "desiredStatus": status, "maxResults": 100},
                )
            e.add_response(
                "describe_tasks",
                {"tasks": tasks, "failures": []},
                {"cluster": "starburst-dask", "tasks": [mine, other], "include": ["TAGS"]},
            )
            return await governor.status(ON_DEMAND)

    status = asyncio.run(run())
    # The minute's peak was the project's 5 (4 + 1): the metric's 7 leave 2 to others;
    # the project holds 3 now (1, and 2 just launched).
    assert (status.quota, status.usage, status.headroom) == (16, 5.0, 11.0)


def test_without_the_projects_tasks_usage_is_the_metrics():
    async def answers(governor, quotas, cloudwatch):
        quotas.add_response("get_service_quota", quota_answer(16.0), IDS)
        cloudwatch.add_response("get_metric_data", usage_answer(6.0, at(0)), USAGE_QUERY)
        return await governor.status(ON_DEMAND)

    assert governed(answers).usage == 6.0


def test_the_peak_of_holdings_over_a_window():
    held = [
        Holding(ON_DEMAND, 4.0, at(-60), at(10)),
        Holding(ON_DEMAND, 2.0, at(5)),
        Holding(ON_DEMAND, 8.0, at(20), at(25)),
        Holding("FARGATE_SPOT", 16.0, at(0)),
    ]
    assert peak(held, ON_DEMAND, at(0), at(60)) == 10.0  # 2 and 8 from 20 to 25
    assert peak(held, ON_DEMAND, at(0), at(15)) == 6.0  # 4 and 2 overlapped from 5 to 10
    assert peak(held, ON_DEMAND, at(11), at(19)) == 2.0
    assert current(held, ON_DEMAND) == 2.0 and current(held, "FARGATE_SPOT") == 16.0


def test_no_datapoint_is_no_usage():
    async def answers(governor, quotas, cloudwatch):
        quotas.add_response("get_service_quota", quota_answer(8.0), IDS)
        cloudwatch.add_response("get_metric_data", usage_answer(), USAGE_QUERY)
        return await governor.status(ON_DEMAND)

    status = governed(answers)
    assert (status.quota, status.usage) == (8, 0)
    assert fits(status, 2) == 4


def test_a_quota_never_changed_is_aws_default():
    async def answers(governor, quotas, cloudwatch):
        quotas.add_client_error(
            "get_service_quota",
            "NoSuchResourceException",
            "The request failed because the specified service quota does not exist.",
            expected_params=IDS,
        )
        quotas.add_response("get_aws_default_service_quota", quota_answer(6.0), IDS)
        return await governor.quota(ON_DEMAND)

    assert governed(answers) == 6.0


def test_an_unreadable_quota_launches_ungoverned_and_says_so_once(caplog):
    async def answers(governor, quotas, cloudwatch):
        for _ in range(2):
            quotas.add_client_error(
                "get_service_quota",
                "AccessDeniedException",
                "User is not authorized to perform: servicequotas:GetServiceQuota",
                expected_params=IDS,
            )
        return [await governor.status(ON_DEMAND) for _ in range(2)]

    with caplog.at_level(logging.WARNING, logger="starburst_dask.ecs.quota"):
        statuses = governed(answers)
    assert all(math.isinf(s.quota) and fits(s, 4) == 2**31 for s in statuses)
    [warning] = [r.getMessage() for r in caplog.records]
    assert "cannot read the Fargate On-Demand vCPU resource count quota" in warning


def test_unreadable_usage_counts_as_none():
    async def answers(governor, quotas, cloudwatch):
        quotas.add_response("get_service_quota", quota_answer(16.0), IDS)
        cloudwatch.add_client_error("get_metric_data", "AccessDenied", "not authorized")
        return await governor.status(ON_DEMAND)

    assert governed(answers).usage == 0.0


def pending(status):
    return {
        "RequestedQuotas": [
            {"Id": "req-1", "DesiredValue": 64.0, "Status": status, "QuotaCode": IDS["QuotaCode"]}
        ]
    }


def test_increase_request_is_filed_above_the_current_quota():
    async def answers(governor, quotas, cloudwatch):
        quotas.add_response("get_service_quota", quota_answer(6.0), IDS)
        for status in ("PENDING", "CASE_OPENED"):
            quotas.add_response(
                "list_requested_service_quota_change_history_by_quota",
                {"RequestedQuotas": []},
                {**IDS, "Status": status},
            )
        quotas.add_response(
            "request_service_quota_increase",
            {"RequestedQuota": {"Id": "req-2", "DesiredValue": 32.0, "Status": "PENDING"}},
            {**IDS, "DesiredValue": 32.0},
        )
        return await request_increase(governor.quotas, ON_DEMAND, 32)

    assert governed(answers) == {"Id": "req-2", "DesiredValue": 32.0, "Status": "PENDING"}


def test_increase_not_above_the_quota_is_refused_and_files_nothing():
    async def answers(governor, quotas, cloudwatch):
        quotas.add_response("get_service_quota", quota_answer(16.0), IDS)
        with pytest.raises(ConfigurationError) as info:
            await request_increase(governor.quotas, ON_DEMAND, 16)
        return str(info.value)

    # No RequestServiceQuotaIncrease was queued: calling it would have failed the stub.
    assert "is 16 vCPU already; request more than 16" in governed(answers)


def test_a_second_open_increase_request_is_refused_naming_the_first():
    async def answers(governor, quotas, cloudwatch):
        quotas.add_response("get_service_quota", quota_answer(6.0), IDS)
        quotas.add_response(
            "list_requested_service_quota_change_history_by_quota",
            {"RequestedQuotas": []},
            {**IDS, "Status": "PENDING"},
        )
        quotas.add_response(
            "list_requested_service_quota_change_history_by_quota",
            pending("CASE_OPENED"),
            {**IDS, "Status": "CASE_OPENED"},
        )
        with pytest.raises(ConfigurationError) as info:
            await request_increase(governor.quotas, ON_DEMAND, 128)
        return str(info.value)

    message = governed(answers)
    assert "to 64 vCPU is open already (CASE_OPENED, request req-1)" in message
    assert "one open request per quota" in message


def test_quota_error_names_the_quota_the_numbers_and_the_fix():
    status = QuotaStatus(ON_DEMAND, quota=6, usage=5.5)
    message = quota_error(ON_DEMAND, 1, status, waited=300.4)
    assert fargate.QUOTA_CODES[ON_DEMAND] in message
    assert "for 300 s: a task needs 1 vCPU, the quota is 6 and 5.5 are in use" in message
    assert "starburst-dask quota --request" in message
