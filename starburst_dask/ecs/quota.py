"""The vCPU quota governor: how many more tasks the account's Fargate quota lets us run.

Fargate's vCPU quotas (On-Demand and Spot, each) are account-wide: tasks of other
clusters and services count too. The governor reads the quota from Service Quotas, the
project's own usage from ECS (:mod:`.usage`) and the rest of the account's from
CloudWatch ``AWS/Usage``, and says how many tasks of a size fit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .. import fargate
from ..errors import ConfigurationError
from . import usage as held
from .usage import ProjectUsage

logger = logging.getLogger(__name__)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass
class QuotaStatus:
    """A cluster's view of one Fargate vCPU quota.

    Attributes
    ----------
    capacity_provider : str
        ``FARGATE`` (On-Demand) or ``FARGATE_SPOT``.
    quota : float
        The account's vCPU quota (``inf`` when it cannot be read).
    usage : float
        vCPUs in use across the account, this cluster included.
    running : int
        This cluster's workers launched and not stopped.
    waiting : int
        Workers requested that wait for quota.
    providers : dict
        This cluster's running workers by capacity provider (Spot, and On-Demand after a
        ``spot="fallback"``).
    """

    capacity_provider: str
    quota: float = math.inf
    usage: float = 0.0
    running: int = 0
    waiting: int = 0
    providers: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def headroom(self) -> float:
        """vCPUs free under the quota."""
        return max(0.0, self.quota - self.usage)

    def __str__(self) -> str:
        quota = "unknown" if math.isinf(self.quota) else f"{self.quota:g}"
        return (
            f"{fargate.QUOTA_NAMES[self.capacity_provider]}: quota {quota} vCPU, "
            f"in use {self.usage:g}, workers running {self.running}"
            + (f" ({self.describe_providers()})" if len(self.providers) > 1 else "")
            + f", waiting for quota {self.waiting}"
        )

    def describe_providers(self) -> str:
        """Running workers by capacity provider, in words: ``3 on Spot, 1 On-Demand``."""
        words = {"FARGATE_SPOT": "on Spot", "FARGATE": "On-Demand"}
        return ", ".join(
            f"{n} {words.get(p, p)}" for p, n in sorted(self.providers.items(), reverse=True) if n
        )


class QuotaGovernor:
    """Reads the Fargate vCPU quota and usage, and says what fits.

    Parameters
    ----------
    quotas, cloudwatch
        aiobotocore Service Quotas and CloudWatch clients.
    project : ProjectUsage, optional
        The project's own tasks, known exactly: the usage metric then counts only for
        the rest of the account. Without it, usage is the metric's.
    clock : callable
        The time now, UTC (tests inject their own).
    """

    def __init__(
        self,
        quotas: Any,
        cloudwatch: Any,
        project: ProjectUsage | None = None,
        clock: Callable[[], datetime.datetime] = _utcnow,
    ) -> None:
        self.quotas = quotas
        self.cloudwatch = cloudwatch
        self.project = project
        self._clock = clock
        self._unreadable: set[str] = set()

    async def quota(self, provider: str) -> float:
        """The account's vCPU quota for ``provider``; ``inf`` if it cannot be read."""
        try:
            return await applied_quota(self.quotas, provider)
        except (ClientError, BotoCoreError) as e:
            if provider not in self._unreadable:
                self._unreadable.add(provider)
                logger.warning(
                    "cannot read the %s quota (%s); launching without the quota governor",
                    fargate.QUOTA_NAMES[provider],
                    e,
                )
            return math.inf

    async def usage(self, provider: str) -> tuple[datetime.datetime, float] | None:
        """The account's latest ``AWS/Usage`` datapoint for ``provider``: when its minute
        began, and the most vCPUs in use during it; ``None`` if there is none."""
        now = self._clock()
        try:
            answer = await self.cloudwatch.get_metric_data(
                MetricDataQueries=[
                    {
                        "Id": "usage",
                        "ReturnData": True,
                        "MetricStat": {
                            "Metric": {
                                "Namespace": fargate.USAGE_NAMESPACE,
                                "MetricName": fargate.USAGE_METRIC,
                                "Dimensions": fargate.usage_dimensions(provider),
                            },
                            "Period": fargate.USAGE_PERIOD,
                            "Stat": "Maximum",
                        },
                    }
                ],
                # On a minute, as CloudWatch rounds it: each period is then one minute.
                StartTime=(now - datetime.timedelta(minutes=5)).replace(second=0, microsecond=0),
                EndTime=now,
                ScanBy="TimestampDescending",
            )
        except (ClientError, BotoCoreError) as e:
            logger.debug("cannot read Fargate usage: %s", e)
            return None
        result = answer["MetricDataResults"][0]
        if not result["Values"]:
            return None
        return result["Timestamps"][0], float(result["Values"][0])

    async def status(self, provider: str) -> QuotaStatus:
        """Quota and usage now.

        The usage metric is a per-minute maximum, so it shows tasks late and their peak
        long: the project's own usage is known exactly (its tasks, by their tags), and
        the rest of the account's is the metric's latest maximum less the project's own
        peak over that datapoint's minute.
        """
        quota = await self.quota(provider)
        if math.isinf(quota):
            return QuotaStatus(provider)
        if self.project is None:
            datapoint = await self.usage(provider)
            return QuotaStatus(provider, quota=quota, usage=datapoint[1] if datapoint else 0.0)
        now = self._clock()
        # Read together: a launch waits for this.
        datapoint, holdings = await asyncio.gather(self.usage(provider), self.project.holdings(now))
        others = 0.0
        if datapoint is not None:
            begun, most = datapoint
            ended = min(now, begun + datetime.timedelta(seconds=fargate.USAGE_PERIOD))
            others = max(0.0, most - held.peak(holdings, provider, begun, ended))
        return QuotaStatus(provider, quota=quota, usage=others + held.current(holdings, provider))


def fits(status: QuotaStatus, vcpus: float) -> int:
    """How many tasks of ``vcpus`` each fit in the headroom."""
    if math.isinf(status.quota):
        return 2**31
    return max(0, math.floor(status.headroom / vcpus + 1e-9))


def quota_error(provider: str, needed: float, status: QuotaStatus, waited: float) -> str:
    """The message for a launch that found no room within its deadline."""
    code = fargate.QUOTA_CODES[provider]
    return (
        f"no room under the {fargate.QUOTA_NAMES[provider]} quota ({code}) for {waited:.0f} s: "
        f"a task needs {needed:g} vCPU, the quota is {status.quota:g} and {status.usage:g} are "
        f"in use. Raise it with `starburst-dask quota --request <vCPUs>` (or `aws "
        f"service-quotas request-service-quota-increase --service-code fargate --quota-code "
        f"{code} --desired-value <vCPUs>`), or stop other Fargate tasks"
    )


class Deadline:
    """Seconds left until a deadline; for retry loops that must end.

    ``clock``: seconds, monotonic (``time.monotonic``; tests inject their own).
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.start = clock()
        self.seconds = seconds

    @property
    def elapsed(self) -> float:
        return self._clock() - self.start

    @property
    def remaining(self) -> float:
        return max(0.0, self.seconds - self.elapsed)

    @property
    def expired(self) -> bool:
        return self.elapsed >= self.seconds


async def applied_quota(quotas: Any, provider: str) -> float:
    """``provider``'s vCPU quota: the applied value, else AWS's default for it.

    GetServiceQuota answers NoSuchResourceException when an account has no applied value
    for a quota (it was never changed); the default value then applies.
    """
    ids = {"ServiceCode": fargate.QUOTA_SERVICE_CODE, "QuotaCode": fargate.QUOTA_CODES[provider]}
    try:
        answer = await quotas.get_service_quota(**ids)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "NoSuchResourceException":
            raise
        answer = await quotas.get_aws_default_service_quota(**ids)
    return float(answer["Quota"]["Value"])


async def request_increase(quotas: Any, provider: str, vcpus: float) -> dict[str, Any]:
    """File a request to raise ``provider``'s vCPU quota to ``vcpus``; the request.

    Raises
    ------
    ConfigurationError
        ``vcpus`` is not above the current quota, or an increase request is open already
        (AWS allows one open request per quota); nothing is filed.
    """
    current = await applied_quota(quotas, provider)
    name = fargate.QUOTA_NAMES[provider]
    if vcpus <= current:
        raise ConfigurationError(
            f"the {name} quota is {current:g} vCPU already; request more than {current:g}"
        )
    pending = await pending_requests(quotas, provider)
    if pending:
        request = pending[0]
        raise ConfigurationError(
            f"an increase of the {name} quota to {request['DesiredValue']:g} vCPU is open "
            f"already ({request['Status']}, request {request['Id']}); AWS allows one open "
            "request per quota: wait for it, or follow it up in the Service Quotas console"
        )
    answer = await quotas.request_service_quota_increase(
        ServiceCode=fargate.QUOTA_SERVICE_CODE,
        QuotaCode=fargate.QUOTA_CODES[provider],
        DesiredValue=float(vcpus),
    )
    return answer["RequestedQuota"]


async def pending_requests(quotas: Any, provider: str) -> list[dict[str, Any]]:
    """Open increase requests for ``provider``'s quota."""
    found = []
    for status in ("PENDING", "CASE_OPENED"):
        with contextlib.suppress(ClientError, BotoCoreError):
            answer = await quotas.list_requested_service_quota_change_history_by_quota(
                ServiceCode=fargate.QUOTA_SERVICE_CODE,
                QuotaCode=fargate.QUOTA_CODES[provider],
                Status=status,
            )
            found += answer["RequestedQuotas"]
    return found


async def account_report(
    region: str, request: float | None = None, provider: str = "FARGATE"
) -> dict[str, Any]:
    """Both quotas with usage and open requests; first files ``request`` if given.

    What ``starburst-dask quota`` prints. An endpoint that cannot be reached is an error
    (the command's clients fail within seconds), not a quota reported unknown.
    """
    from aiobotocore.session import get_session

    from ..aws.clients import aio_command_config

    session = get_session()
    config = aio_command_config()
    async with (
        session.create_client("service-quotas", region_name=region, config=config) as quotas,
        session.create_client("cloudwatch", region_name=region, config=config) as cloudwatch,
    ):
        with contextlib.suppress(ClientError):  # AWS answered: unreadable is "unknown"
            await applied_quota(quotas, provider)
        filed = await request_increase(quotas, provider, request) if request else None
        governor = QuotaGovernor(quotas, cloudwatch)
        report: dict[str, Any] = {"region": region, "quotas": []}
        for p in fargate.QUOTA_CODES:
            status = await governor.status(p)
            report["quotas"].append(
                {
                    "capacity_provider": p,
                    "name": fargate.QUOTA_NAMES[p],
                    "code": fargate.QUOTA_CODES[p],
                    "quota": None if math.isinf(status.quota) else status.quota,
                    "usage": status.usage,
                    "pending_requests": [
                        {"id": r["Id"], "desired": r["DesiredValue"], "status": r["Status"]}
                        for r in await pending_requests(quotas, p)
                    ],
                }
            )
        if filed:
            report["request"] = {
                "id": filed["Id"],
                "desired": filed["DesiredValue"],
                "status": filed["Status"],
            }
        return report
