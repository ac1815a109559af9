"""A cluster's options: arguments merged over config, validated before any AWS call."""

from __future__ import annotations

import dataclasses
import numbers
import re
import uuid
from typing import Any

import boto3.session

from . import config, fargate
from .errors import ConfigurationError

#: Fraction of a worker task's memory left to the OS, the nanny and Python itself.
MEMORY_HEADROOM = 0.1
MEMORY_HEADROOM_MIN_MIB = 256


@dataclasses.dataclass(frozen=True)
class ClusterOptions:
    """Everything a :class:`~starburst_dask.FargateCluster` needs to launch, as plain data.

    Build it with :meth:`resolve`, which applies config defaults and validates.
    """

    name: str
    n_workers: int
    worker_cpu: int
    worker_memory: int
    scheduler_cpu: int
    scheduler_memory: int
    image: str
    region: str
    cluster: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    assign_public_ip: bool
    execution_role: str
    task_role: str
    log_group: str
    environment: dict[str, str]
    tags: dict[str, str]
    scheduler_timeout: int
    worker_death_timeout: int
    launch_timeout: float
    poll_interval: float

    @classmethod
    def resolve(cls, **arguments: Any) -> ClusterOptions:
        """Merge ``arguments`` over the ``starburst`` config and validate the result.

        Raises
        ------
        ConfigurationError
            The first invalid option, with what would be valid.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = set(arguments) - set(names)
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {sorted(unknown)}; valid options are {names}"
            )
        values = {n: config.get(n.replace("_", "-"), arguments.get(n)) for n in names}
        values["name"] = values["name"] or f"starburst-{uuid.uuid4().hex[:8]}"
        values["region"] = values["region"] or boto3.session.Session().region_name
        for key in ("subnets", "security_groups"):
            values[key] = tuple(values[key] or ())
        for key in ("environment", "tags"):
            values[key] = {str(k): str(v) for k, v in (values[key] or {}).items()}
        options = cls(**values)
        options.validate()
        return options

    def validate(self) -> None:
        """Raise :class:`ConfigurationError` for the first invalid option."""
        if isinstance(self.n_workers, bool) or not isinstance(self.n_workers, numbers.Integral):
            raise ConfigurationError(
                f"n_workers must be a whole number, got {self.n_workers!r}; "
                "pass e.g. n_workers=4"
            )
        if self.n_workers < 0:
            raise ConfigurationError(
                f"n_workers must be 0 or more, got {self.n_workers}; pass e.g. n_workers=4"
            )
        for role in ("worker", "scheduler"):
            cpu, memory = getattr(self, f"{role}_cpu"), getattr(self, f"{role}_memory")
            problem = fargate.check_task_size(cpu, memory)
            if problem:
                raise ConfigurationError(
                    f"{role}_cpu={cpu}, {role}_memory={memory} is not a Fargate task size: "
                    f"{problem}"
                )
        if not self.region:
            raise ConfigurationError(
                "no AWS region is configured; pass region='us-east-1' (or another), "
                "set AWS_DEFAULT_REGION, or set starburst.region in dask config"
            )
        regions = boto3.session.Session().get_available_regions("ecs")
        if self.region not in regions:
            raise ConfigurationError(
                f"unknown AWS region {self.region!r}; valid ECS regions include "
                f"{', '.join(sorted(regions)[:6])}, ..."
            )
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,200}", self.name):
            raise ConfigurationError(
                f"cluster name {self.name!r} must be 1-200 letters, digits, '-' or '_'"
            )
        for key in ("scheduler_timeout", "worker_death_timeout", "launch_timeout"):
            if getattr(self, key) <= 0:
                raise ConfigurationError(f"{key} must be a positive number of seconds")

    @property
    def worker_vcpus(self) -> int:
        """Threads per worker: one per vCPU, at least one."""
        return max(1, int(fargate.vcpus(self.worker_cpu)))

    @property
    def worker_memory_limit(self) -> int:
        """Bytes a worker may use: the task's memory less headroom for the OS and nanny."""
        headroom = max(MEMORY_HEADROOM_MIN_MIB, int(self.worker_memory * MEMORY_HEADROOM))
        return (self.worker_memory - headroom) * 2**20
