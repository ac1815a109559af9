"""The vCPU quota decisions: what fits, the deadline, quota and usage as AWS answers them."""

import asyncio
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
from starburst_dask.errors import ConfigurationError

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


def usage_answer(*values):
    return {
        "MetricDataResults": [
            {
                "Id": "usage",
                "Label": fargate.USAGE_METRIC,
                "Values": list(values),
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


def governed(answers, clock=None):
    """Run ``answers(governor, quotas, cloudwatch)`` against stubbed clients."""

    async def run():
        async with stubbed("service-quotas", "cloudwatch") as [(quotas, q), (cloudwatch, c)]:
            governor = QuotaGovernor(quotas, cloudwatch, **({"clock": clock} if clock else {}))
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


def test_usage_is_others_metric_less_our_recent_peak_plus_ours_now():
    """The metric is a per-minute maximum: our stopped tasks stay in it for a while."""
    clock = FakeClock()

    async def answers(governor, quotas, cloudwatch):
        governor.record(ON_DEMAND, 4.0)  # our 4 vCPUs ran ...
        clock.advance(10)
        governor.record(ON_DEMAND, 1.0)  # ... 3 stopped; the metric still shows all 4
        quotas.add_response("get_service_quota", quota_answer(16.0), IDS)
        cloudwatch.add_response("get_metric_data", usage_answer(6.0), USAGE_QUERY)
        early = await governor.status(ON_DEMAND)
        clock.advance(QuotaGovernor.HISTORY + 1)
        governor.record(ON_DEMAND, 1.0)  # the 4 have left the history
        quotas.add_response("get_service_quota", quota_answer(16.0), IDS)
        cloudwatch.add_response("get_metric_data", usage_answer(6.0), USAGE_QUERY)
        late = await governor.status(ON_DEMAND)
        return early, late

    early, late = governed(answers, clock)
    assert (early.quota, early.usage, early.headroom) == (16, 3.0, 13.0)  # others 2 + ours 1
    assert (late.quota, late.usage) == (16, 6.0)  # the metric's 6 are others' 5 + our 1


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
