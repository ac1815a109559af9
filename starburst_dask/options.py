"""A cluster's options: arguments merged over config, validated before any AWS call."""

from __future__ import annotations

import dataclasses
import re
import sys
import uuid
from typing import Any

import boto3.session
import dask

from . import config, fargate, sensitive
from .cluster import lifetime
from .errors import ConfigurationError
from .values import checked

#: ``software`` with neither ``image`` nor ``software`` given: this environment, as an
#: image built once per content (``images.build.CURRENT``).
CURRENT_ENVIRONMENT = "current"
#: Fraction of a worker task's memory left to the OS, the nanny and Python itself.
MEMORY_HEADROOM = 0.1
MEMORY_HEADROOM_MIN_MIB = 256


def default_image() -> str:
    """dask's own image for this client: its dask version and Python ``X.Y``.

    Pickled tasks need the same Python, dask and distributed on both sides.
    """
    return f"daskdev/dask:{dask.__version__}-py{sys.version_info[0]}.{sys.version_info[1]}"


def configured_image() -> str:
    """The image setup and doctor check the network for: ``starburst.image``, else dask's
    own (from Docker Hub: what needs the most of a network; clusters without an image
    run this environment's, from ECR)."""
    return config.setting("image") or default_image()


@dataclasses.dataclass(frozen=True)
class ClusterOptions:
    """Everything a :class:`~starburst_dask.FargateCluster` needs to launch, as plain data.

    Build it with :meth:`resolve`, which applies config defaults and validates. Its fields
    are the options of ``starburst-schema.yaml`` that a cluster uses, named from their
    config keys (see :mod:`starburst_dask.config`).
    """

    name: str
    n_workers: int
    worker_cpu: int
    worker_memory: int
    scheduler_cpu: int
    scheduler_memory: int
    image: str
    #: environment.yml, conda-lock.yml, a pip lock or "current" (the default when no image
    #: is configured): the image is built from it (images/).
    software: str | None
    region: str
    #: The ECS cluster (name or ARN) the tasks run in; ``cluster`` is its former name.
    ecs_cluster: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    #: True, False, or "auto": public IPs where the subnets route to an internet gateway.
    assign_public_ip: bool | str
    #: The client runs inside the tasks' VPC: it connects to the scheduler's private IP.
    inside_vpc: bool
    execution_role: str
    task_role: str
    log_group: str
    #: Mutual TLS with the cluster's own certificates (``cluster/security.py``); False:
    #: plain TCP.
    security: bool
    environment: dict[str, str]
    #: Environment variable -> Secrets Manager secret ARN or SSM parameter (ARN or name),
    #: read by ECS into the tasks' environment; never in RunTask overrides.
    secrets: dict[str, str]
    tags: dict[str, str]
    #: US dollars: hard limit, alert threshold, and the most an hour may cost (cost.py).
    max_cost: float | None
    cost_alert: float | None
    max_hourly_cost: float | None
    #: US dollars an hour and vCPUs above which a launch is confirmed first (``None``:
    #: never asked; ``cost/confirm.py``).
    confirm_hourly_cost: float | None
    confirm_vcpus: float | None
    #: Seconds (durations like "5m" are read as seconds).
    scheduler_timeout: float
    worker_death_timeout: float
    worker_ttl: float
    #: Seconds a launched task may take to reach RUNNING (formerly ``launch_timeout``).
    running_timeout: float
    poll_interval: float
    spot: bool | str
    #: Fargate CPU architecture of every task: "X86_64" or "ARM64" (Graviton).
    architecture: str
    quota_interval: float
    quota_auto_request: bool
    #: Seconds to retry throttled launches or wait for room under the quota before an
    #: error (formerly ``launch_deadline``).
    launch_retry_timeout: float
    #: Seconds (or a duration like "24h") after which a cluster's tasks stop themselves.
    max_lifetime: float | None
    #: ECR repository of images built from ``software``.
    image_repository: str
    #: Refuse an image whose tag records another distributed than the client's.
    image_check_versions: bool
    #: ECR pull through cache rule prefix through which Docker Hub images are pulled.
    image_cache: str | None
    #: Spot priced as On-Demand less this fraction (cost estimates).
    cost_spot_discount: float

    @classmethod
    def resolve(cls, **arguments: Any) -> ClusterOptions:
        """Merge ``arguments`` over the ``starburst`` config and validate the result.

        ``arguments`` are options by name (or by a former name, :data:`config.ALIASES`);
        ``None`` takes the configured value. Each value, given or configured, is typed
        and checked by its schema (:mod:`starburst_dask.values`).

        Raises
        ------
        ConfigurationError
            An unknown argument or ``starburst.*`` config key (with the closest valid
            one), or the first invalid option, with what would be valid.
        """
        config.check_keys()
        arguments = _by_name(arguments)
        values = {
            n: config.setting(n)
            if arguments.get(n) is None
            else checked(config.node(n), arguments[n], config.origin(n))
            for n in config.CLUSTER_OPTIONS
        }
        if arguments.get("software") is not None and arguments.get("image") is not None:
            raise ConfigurationError("pass image= or software= (which builds the image), not both")
        if arguments.get("image") is not None:
            values["software"] = None  # image= opts out of the configured environment
        elif not values["image"] and not values["software"]:
            values["software"] = CURRENT_ENVIRONMENT  # the default: the user's own
        values["image"] = values["image"] or default_image()
        values["name"] = values["name"] or f"starburst-{uuid.uuid4().hex[:8]}"
        values["region"] = values["region"] or boto3.session.Session().region_name
        options = cls(**values)
        options.validate()
        return options

    def validate(self) -> None:
        """Raise :class:`ConfigurationError` for the first invalid option, beyond its type and
        bounds (checked by :func:`~starburst_dask.values.checked` as it is resolved)."""
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
        if not re.fullmatch(rf"[A-Za-z0-9_-]{{1,{fargate.STARTED_BY_MAX}}}", self.name):
            raise ConfigurationError(
                f"cluster name {self.name!r} must be 1-{fargate.STARTED_BY_MAX} letters, "
                "digits, '-' or '_' (it is every task's ECS startedBy)"
            )
        self._validate_tags()
        if (
            self.cost_alert is not None
            and self.max_cost is not None
            and self.cost_alert >= self.max_cost
        ):
            raise ConfigurationError(
                f"cost_alert={self.cost_alert:g} must be below max_cost={self.max_cost:g}: "
                "the alert warns before the hard limit closes the cluster"
            )
        lifetime.max_lifetime_seconds(self.max_lifetime)  # raises for a bad duration
        problem = fargate.check_architecture(self.architecture)
        if problem:
            raise ConfigurationError(
                f"architecture: {problem} (ARM64 is Graviton); pass "
                "e.g. architecture='ARM64' or set starburst.architecture"
            )
        sensitive.check_environment(self.environment)
        sensitive.check_secrets(self.secrets, self.environment)
        self._validate_overrides()

    def _validate_tags(self) -> None:
        """ECS's tag limits, counting the tags the project adds to every task."""
        from .ecs.tasks import TAG_CLUSTER, TAG_ROLE  # tasks imports this module

        ours = (TAG_CLUSTER, TAG_ROLE)
        room = fargate.TAGS_MAX - len(ours)
        if len(self.tags) > room:
            raise ConfigurationError(
                f"{len(self.tags)} tags given; ECS allows {fargate.TAGS_MAX} per task and "
                f"starburst-dask adds {len(ours)} ({', '.join(ours)}): pass at most {room}"
            )
        reserved = fargate.RESERVED_TAG_PREFIX
        for key, value in self.tags.items():
            if key in ours:
                raise ConfigurationError(f"tag {key!r} is set by starburst-dask; use another key")
            if not 1 <= len(key) <= fargate.TAG_KEY_MAX:
                raise ConfigurationError(
                    f"tag key {key[:30]!r}... is {len(key)} characters; ECS allows 1 to "
                    f"{fargate.TAG_KEY_MAX}: shorten it"
                )
            if len(value) > fargate.TAG_VALUE_MAX:
                raise ConfigurationError(
                    f"the value of tag {key!r} is {len(value)} characters; ECS allows at "
                    f"most {fargate.TAG_VALUE_MAX}: shorten it"
                )
            for what, text in (("key", key), ("value", value)):
                if text.lower().startswith(reserved):
                    raise ConfigurationError(
                        f"tag {what} {text!r} starts with {reserved!r}, a prefix AWS "
                        "reserves for its own tags: rename it"
                    )

    def _validate_overrides(self) -> None:
        """The RunTask overrides (command and environment) must fit AWS's 8,192 characters."""
        from .ecs.tasks import overrides_length  # tasks imports this module

        length = overrides_length(self)
        if length > fargate.RUN_TASK_OVERRIDES_MAX:
            names = sorted(self.environment, key=lambda k: -len(k) - len(self.environment[k]))
            raise ConfigurationError(
                f"the environment variables make each task's RunTask overrides {length} "
                f"characters of JSON (with the command starburst-dask sends); ECS allows "
                f"{fargate.RUN_TASK_OVERRIDES_MAX}: pass fewer or shorter variables "
                f"(largest: {', '.join(names[:3])}), or put large values in the image or S3"
            )

    @property
    def worker_vcpus(self) -> int:
        """Threads per worker: one per vCPU, at least one."""
        return max(1, int(fargate.vcpus(self.worker_cpu)))

    @property
    def worker_memory_limit(self) -> int:
        """Bytes a worker may use: the task's memory less headroom for the OS and nanny."""
        headroom = max(MEMORY_HEADROOM_MIN_MIB, int(self.worker_memory * MEMORY_HEADROOM))
        return (self.worker_memory - headroom) * 2**20


def _by_name(arguments: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` with former option names replaced by the current ones.

    Raises
    ------
    ConfigurationError
        For an unknown name (with the closest option), or an option given by both names.
    """
    named: dict[str, Any] = {}
    given: dict[str, str] = {}  # the name each option was given by
    for key, value in arguments.items():
        name = config.ALIASES.get(key, key)
        if name not in config.CLUSTER_OPTIONS:
            raise ConfigurationError(
                f"unknown option {key!r}{config.did_you_mean(key, config.CLUSTER_OPTIONS)} "
                f"Valid options: {', '.join(sorted(config.CLUSTER_OPTIONS))}"
            )
        if value is None:
            continue
        if name in given:
            raise ConfigurationError(
                f"{given[name]}= and {key}= name the same option ({name}): pass only {name}="
            )
        named[name], given[name] = value, key
    return named
