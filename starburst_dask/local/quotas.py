"""The local Fargate's account limits: vCPU quotas, their usage metric, API rate limits.

:class:`FargateAccount` holds the quotas RunTask enforces, publishes vCPU usage to
CloudWatch ``AWS/Usage`` as AWS does, answers Service Quotas for the Fargate quota codes
(moto knows none of them) and throttles ECS actions with AWS's token buckets.
"""

from __future__ import annotations

import datetime
import json
import math
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.servicequotas import urls as moto_quota_urls
from moto.servicequotas.models import ServiceQuotasBackend, servicequotas_backends
from moto.servicequotas.responses import ServiceQuotasResponse

from .. import fargate
from ..aws.throttling import TokenBucket
from . import limits

#: Seconds between samples of the usage: a task that runs for a second shows in its minute.
USAGE_SAMPLE = 1.0


class FargateAccount:
    """Quotas, usage and rate limits shared by every account and region of the emulator.

    Parameters
    ----------
    usage : callable
        Returns ``(capacity provider, vCPUs, account, region)`` for every task that
        counts against a quota (not yet STOPPED).
    quota : float
        Starting vCPU quota of each capacity provider.
    throttling : bool
        Enforce AWS's API rate limits.
    """

    def __init__(
        self,
        usage: Callable[[], Iterable[tuple[str, float, str, str]]],
        quota: float,
        throttling: bool,
    ) -> None:
        self._usage = usage
        self.quotas = dict.fromkeys(fargate.QUOTA_CODES, float(quota))
        #: Whether the account has an applied value of each quota. An account that never
        #: changed a quota may have none: GetServiceQuota then answers
        #: NoSuchResourceException and the default (GetAWSDefaultServiceQuota) applies
        #: (Service Quotas API Reference, GetServiceQuota).
        self.applied = dict.fromkeys(fargate.QUOTA_CODES, True)
        #: Concurrent tasks each capacity provider may run (``None``: no such limit), as
        #: new accounts meet besides the vCPU quota.
        self.task_limits: dict[str, int | None] = dict.fromkeys(fargate.QUOTA_CODES)
        #: Seconds before a quota increase request is approved; ``None``: never.
        self.approval_delay: float | None = 5.0
        self.requests: list[dict[str, Any]] = []
        self.throttling = throttling
        self.buckets = {k: TokenBucket(*v) for k, v in fargate.RATE_LIMITS.items()}
        self.lock = threading.RLock()  # admission and task registration are one step
        self._closed = threading.Event()
        self._timers: list[threading.Timer] = []
        self._publisher = threading.Thread(
            target=self._publish, daemon=True, name="local-fargate-usage"
        )
        self._publisher.start()

    def usage(self, provider: str, account: str | None = None) -> float:
        """vCPUs of ``provider`` in use (in ``account``, or in all)."""
        return sum(v for p, v, a, _ in self._usage() if p == provider and account in (None, a))

    def tasks(self, provider: str, account: str) -> int:
        """Tasks of ``provider`` in ``account`` not yet STOPPED."""
        return sum(1 for p, _, a, _ in self._usage() if p == provider and a == account)

    def admit(self, provider: str, vcpus: float, count: int, account: str) -> tuple[int, str]:
        """How many of ``count`` tasks of ``vcpus`` each fit under the limits now, and
        the ``failures`` reason AWS gives the others.

        Call with :attr:`lock` held until the admitted tasks are registered.
        """
        if vcpus > self.quotas[provider]:
            return 0, limits.CPU_ABOVE_LIMIT
        room = self.quotas[provider] - self.usage(provider, account)
        admitted = max(0, min(count, math.floor(room / vcpus + 1e-9)))
        reason = limits.QUOTA_VCPUS
        task_limit = self.task_limits[provider]
        if task_limit is not None:
            free = max(0, task_limit - self.tasks(provider, account))
            if free < admitted or (free == 0 and admitted == 0):
                reason = (
                    limits.QUOTA_SPOT_TASKS if provider == "FARGATE_SPOT" else limits.QUOTA_TASKS
                )
                admitted = min(admitted, free)
        return admitted, reason

    def throttled(self, action: str, tasks: int = 0) -> bool:
        """Whether ``action`` (launching ``tasks`` tasks) exceeds a rate limit now."""
        if not self.throttling:
            return False
        needs = [(self.buckets[b], 1) for b in fargate.ACTION_RATE_LIMITS.get(action, ())]
        if tasks:
            needs.append((self.buckets["fargate-task-launches"], tasks))
        taken: list[tuple[TokenBucket, int]] = []
        for bucket, n in needs:  # from every bucket or from none: a throttled call is free
            if bucket.take(n) > 0:
                for b, m in taken:
                    b.give(m)
                return True
            taken.append((bucket, n))
        return False

    def request_increase(self, provider: str, desired: float) -> dict[str, Any]:
        """File a quota increase; approved after :attr:`approval_delay` seconds."""
        now = time.time()
        request = {
            "Id": uuid.uuid4().hex,
            "CaseId": "",
            "ServiceCode": fargate.QUOTA_SERVICE_CODE,
            "ServiceName": "AWS Fargate",
            "QuotaCode": fargate.QUOTA_CODES[provider],
            "QuotaName": fargate.QUOTA_NAMES[provider],
            "DesiredValue": float(desired),
            "Status": "PENDING",
            "Created": now,
            "LastUpdated": now,
            "Unit": "None",
            "GlobalQuota": False,
            "Requester": "local",
        }
        self.requests.append(request)
        if self.approval_delay is not None:
            timer = threading.Timer(self.approval_delay, self._approve, (request, provider))
            timer.daemon = True
            timer.start()
            self._timers.append(timer)
        return request

    def _approve(self, request: dict[str, Any], provider: str) -> None:
        with self.lock:
            self.quotas[provider] = max(self.quotas[provider], request["DesiredValue"])
            request.update(Status="APPROVED", LastUpdated=time.time())

    def close(self) -> None:
        """Stop publishing usage and approving requests."""
        self._closed.set()
        for timer in self._timers:
            timer.cancel()

    def _publish(self) -> None:
        """Sample the usage every second; once a minute is over, publish its maximum as
        one datapoint stamped with the minute's start, as AWS publishes usage metrics
        every minute: the minute under way shows in no datapoint. The first sample of a
        minute counts in the one before too, so a task started in a minute's last second
        is in its datapoint."""
        minute = _minute()
        peaks: dict[tuple[str, str, str], float] = {}
        while not self._closed.wait(USAGE_SAMPLE):
            sample = self._sample()
            for key, vcpus in sample.items():
                peaks[key] = max(peaks.get(key, 0.0), vcpus)
            if (now := _minute()) != minute:
                _put_usage(minute, peaks)
                minute, peaks = now, sample

    def _sample(self) -> dict[tuple[str, str, str], float]:
        """vCPUs in use now by account, region and capacity provider."""
        sample: dict[tuple[str, str, str], float] = {}
        for provider, vcpus, account, region in self._usage():
            key = (account, region, provider)
            sample[key] = sample.get(key, 0.0) + vcpus
        return sample


def _minute() -> int:
    """The minute under way, in minutes since the epoch."""
    return int(time.time() // fargate.USAGE_PERIOD)


def _put_usage(minute: int, peaks: dict[tuple[str, str, str], float]) -> None:
    """One ``AWS/Usage`` datapoint per capacity provider for each account and region
    that ran tasks in ``minute``: the most vCPUs sampled (0 for a provider with none)."""
    stamp = datetime.datetime.fromtimestamp(minute * fargate.USAGE_PERIOD, datetime.timezone.utc)
    for account, region in {(a, r) for a, r, _ in peaks}:
        cloudwatch_backends[account][region].put_metric_data(
            fargate.USAGE_NAMESPACE,
            [
                {
                    "MetricName": fargate.USAGE_METRIC,
                    "Value": peaks.get((account, region, p), 0.0),
                    "Dimensions": fargate.usage_dimensions(p),
                    "Unit": "None",
                    "Timestamp": stamp.replace(tzinfo=None),  # moto's are naive UTC
                }
                for p in fargate.QUOTA_CODES
            ],
        )


_account: FargateAccount | None = None


def install(account: FargateAccount) -> None:
    """Answer Service Quotas for Fargate from ``account`` until :func:`uninstall`."""
    global _account
    _account = account
    servicequotas_backends.backend = LocalServiceQuotasBackend
    servicequotas_backends.clear()


def uninstall() -> None:
    """Restore moto's stock Service Quotas."""
    global _account
    if _account is not None:
        _account.close()
    _account = None
    servicequotas_backends.backend = ServiceQuotasBackend
    servicequotas_backends.clear()


def account() -> FargateAccount:
    """The installed :class:`FargateAccount`."""
    if _account is None:
        raise RuntimeError("the local Fargate is not running")
    return _account


class LocalServiceQuotasBackend(ServiceQuotasBackend):
    """moto's Service Quotas, answering through :class:`LocalServiceQuotasResponse`."""

    @property
    def _url_module(self) -> Any:
        return types.SimpleNamespace(
            url_bases=moto_quota_urls.url_bases,
            url_paths={"{0}/$": LocalServiceQuotasResponse.dispatch},
        )


_PROVIDER_BY_CODE = {code: provider for provider, code in fargate.QUOTA_CODES.items()}


class LocalServiceQuotasResponse(ServiceQuotasResponse):
    """Service Quotas for the Fargate vCPU quotas; other services go to moto."""

    def _fargate_quota(self) -> str | None:
        params = json.loads(self.body or "{}")
        if params.get("ServiceCode") != fargate.QUOTA_SERVICE_CODE:
            return None
        return _PROVIDER_BY_CODE.get(params.get("QuotaCode", ""), "")

    def _quota(self, provider: str, value: float) -> dict[str, Any]:
        code = fargate.QUOTA_CODES[provider]
        return {
            "ServiceCode": fargate.QUOTA_SERVICE_CODE,
            "ServiceName": "AWS Fargate",
            "QuotaArn": f"arn:aws:servicequotas:{self.region}:{self.current_account}:"
            f"fargate/{code}",
            "QuotaCode": code,
            "QuotaName": fargate.QUOTA_NAMES[provider],
            "Value": value,
            "Unit": "None",
            "Adjustable": True,
            "GlobalQuota": False,
            "UsageMetric": {
                "MetricNamespace": fargate.USAGE_NAMESPACE,
                "MetricName": fargate.USAGE_METRIC,
                "MetricDimensions": {
                    d["Name"]: d["Value"] for d in fargate.usage_dimensions(provider)
                },
                "MetricStatisticRecommendation": "Maximum",
            },
        }

    def _unknown(self) -> tuple[str, dict[str, Any]]:
        body = {
            "__type": "NoSuchResourceException",
            "message": "The request failed because the specified service quota does not exist.",
        }
        return json.dumps(body), {"status": 400}

    def get_service_quota(self) -> Any:
        provider = self._fargate_quota()
        if provider is None:
            return super().get_service_quota()
        if not provider or not account().applied[provider]:
            return self._unknown()
        return json.dumps({"Quota": self._quota(provider, account().quotas[provider])})

    def get_aws_default_service_quota(self) -> Any:
        provider = self._fargate_quota()
        if not provider:
            return self._unknown()
        return json.dumps({"Quota": self._quota(provider, fargate.QUOTA_DEFAULT)})

    def list_service_quotas(self) -> str:
        params = json.loads(self.body or "{}")
        quotas = []
        if params.get("ServiceCode") == fargate.QUOTA_SERVICE_CODE:
            quotas = [self._quota(p, v) for p, v in account().quotas.items()]
        return json.dumps({"Quotas": quotas})

    def request_service_quota_increase(self) -> Any:
        provider = self._fargate_quota()
        if not provider:
            return self._unknown()
        desired = json.loads(self.body)["DesiredValue"]
        return json.dumps({"RequestedQuota": account().request_increase(provider, desired)})

    def get_requested_service_quota_change(self) -> Any:
        wanted = json.loads(self.body)["RequestId"]
        for request in account().requests:
            if request["Id"] == wanted:
                return json.dumps({"RequestedQuota": request})
        body = {"__type": "NoSuchResourceException", "message": "No such request."}
        return json.dumps(body), {"status": 400}

    def list_requested_service_quota_change_history_by_quota(self) -> str:
        params = json.loads(self.body)
        found = [
            r
            for r in account().requests
            if r["QuotaCode"] == params.get("QuotaCode")
            and params.get("Status") in (None, r["Status"])
        ]
        return json.dumps({"RequestedQuotas": found})

    def list_requested_service_quota_change_history(self) -> str:
        params = json.loads(self.body or "{}")
        found = [r for r in account().requests if params.get("Status") in (None, r["Status"])]
        return json.dumps({"RequestedQuotas": found})
