"""AWS Fargate figures, in one place.

Every limit, size and identifier the project depends on lives here as data, so the
cluster, its validation and the local Fargate agree with each other and with AWS.
Sources: AWS ECS service quotas, the RunTask/DescribeTasks API references and the
Fargate task-size table (see ``docs/architecture.md``).
"""

from __future__ import annotations

#: CPU architectures of Fargate Linux tasks (the task definition's ``runtimePlatform``
#: ``cpuArchitecture``; ECS API reference, RuntimePlatform), the first the default; the
#: platform an image must provide for each (its manifest list or index names it); and the
#: value of the ``ecs.cpu-architecture`` attribute DescribeTasks reports.
ARCHITECTURES = ("X86_64", "ARM64")
OPERATING_SYSTEM_FAMILY = "LINUX"
IMAGE_PLATFORMS = {"X86_64": "linux/amd64", "ARM64": "linux/arm64"}
#: The same platforms as conda names them (conda-lock's ``--platform``).
CONDA_PLATFORMS = {"X86_64": "linux-64", "ARM64": "linux-aarch64"}
TASK_ARCHITECTURE_ATTRIBUTE = "ecs.cpu-architecture"
TASK_ARCHITECTURE_VALUES = {"X86_64": "x86_64", "ARM64": "arm64"}
#: The oldest Linux platform version that runs ARM64 tasks ("Fargate Linux platform
#: versions"); ``LATEST``, which RunTask uses when none is given, is 1.4.0. Fargate Spot
#: runs both architectures: "FARGATE_SPOT supports Linux tasks with the X86_64
#: architecture on platform version 1.3.0 or later ... with the ARM64 architecture on
#: platform version 1.4.0 or later" (ECS API reference, CapacityProviderStrategyItem; ARM64
#: on Spot since September 2024, "Amazon ECS now supports AWS Graviton-based Spot compute
#: with AWS Fargate"; older user guide pages still say Spot is X86_64 only).
PLATFORM_VERSION_LATEST = "1.4.0"
ARM64_MIN_PLATFORM_VERSION = "1.4.0"

#: ECR pull through cache ("Sync an upstream registry with an Amazon ECR private registry",
#: Amazon ECR User Guide; CreatePullThroughCacheRule API reference): the upstream registries
#: (``upstreamRegistryUrl``) and whether each needs a Secrets Manager secret
#: (``credentialArn``). Docker Hub and GitHub Container Registry, where dask-docker
#: publishes ``daskdev/dask`` and ``ghcr.io/dask/dask``, both do.
PULL_THROUGH_UPSTREAMS = {
    "public.ecr.aws": False,
    "registry.k8s.io": False,
    "quay.io": False,
    "registry-1.docker.io": True,
    "ghcr.io": True,
    "registry.gitlab.com": True,
}
DOCKER_HUB_UPSTREAM = "registry-1.docker.io"
#: A secret's name must begin with this ("Creating a pull through cache rule in Amazon
#: ECR"), and hold ``{"username": ..., "accessToken": ...}`` ("Storing your upstream
#: repository credentials in an AWS Secrets Manager secret").
PULL_THROUGH_SECRET_PREFIX = "ecr-pullthroughcache/"
#: What the pulling principal (a task's execution role) needs beyond a plain ECR pull: the
#: import of the upstream image, and the repository's creation on its first pull ("IAM
#: permissions required to sync an upstream registry with an Amazon ECR private registry").
PULL_THROUGH_PERMISSIONS = ("ecr:BatchImportUpstreamImage", "ecr:CreateRepository")
#: Docker Hub's pull rate limit for unauthenticated pulls: 10 an hour per IPv4 address
#: (or IPv6 /64), since April 2025 ("Docker Hub usage and limits", docs.docker.com; AWS's
#: knowledge center article, "How do I resolve the error CannotPullContainerError: You
#: have reached your pull rate limit in Amazon ECS?", still quotes the older 100 per 6
#: hours). Tasks behind one NAT gateway share its address, hence its limit.
DOCKER_HUB_ANONYMOUS_PULLS = 10
DOCKER_HUB_WINDOW_SECONDS = 3600
#: The stopped reason of a task whose Docker Hub pull is over the limit (the knowledge
#: center article's text, with Docker Hub's current server message).
DOCKER_HUB_TOO_MANY_REQUESTS = (
    "CannotPullContainerError: inspect image has been retried 5 time(s): httpReaderSeeker: "
    "failed open: unexpected status code https://registry-1.docker.io/v2/{name}/manifests/"
    "{reference} Too Many Requests - Server message: toomanyrequests: You have reached your "
    "unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit"
)

#: Valid task sizes: CPU units -> allowed memory values (MiB).
TASK_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}

#: CPU units in one vCPU.
CPU_UNITS_PER_VCPU = 1024

#: Most tasks one RunTask call may start (``count``); not adjustable.
RUN_TASK_MAX_COUNT = 10

#: RunTask ``overrides``: "A total of 8192 characters are allowed for overrides. This limit
#: includes the JSON formatting characters of the override structure." (RunTask API
#: reference.) ``startedBy``: up to 128 letters, digits, ``-``, ``/``, ``_`` (same page).
RUN_TASK_OVERRIDES_MAX = 8192
STARTED_BY_MAX = 128
#: ECS tags (TagResource API reference): at most 50 per resource, key 1-128 and value at
#: most 256 characters; ``aws:`` in any case is reserved as a key or value prefix.
TAGS_MAX = 50
TAG_KEY_MAX = 128
TAG_VALUE_MAX = 256
RESERVED_TAG_PREFIX = "aws:"

#: Most task ids one DescribeTasks call accepts.
DESCRIBE_TASKS_MAX = 100

#: Longest wait, in seconds, between retries of a failing call (AWS SDKs' standard retry
#: mode: "AWS SDKs and Tools Reference Guide", Retry behavior, max backoff 20 s).
RETRY_BACKOFF_MAX = 20.0

#: Most results one ListTasks page returns.
LIST_TASKS_MAX = 100

#: ECS's deployment circuit breaker (Developer Guide, "How the Amazon ECS deployment
#: circuit breaker detects failures"; API ``ThresholdConfiguration``): tasks that fail in
#: a row before it stops launching, by default half the desired count (``BOUNDED_PERCENT``
#: 50) at most 200, the count reset by a task that became healthy (``resetOnHealthyTask``).
CIRCUIT_BREAKER_SHARE = 0.5
CIRCUIT_BREAKER_MAX = 200

#: Container ``stopTimeout``: seconds between SIGTERM and SIGKILL (default, maximum).
STOP_TIMEOUT_DEFAULT = 30
STOP_TIMEOUT_MAX = 120

#: Capacity providers a Fargate cluster carries.
CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")

#: Published Fargate On-Demand prices (USD, Linux), the fallback when the Price List API
#: cannot be read: per vCPU-hour and GB-hour by CPU architecture, and per GB-hour of
#: ephemeral storage beyond the included 20 GB. Regions not listed fall back to
#: us-east-1's figures. Source: aws.amazon.com/fargate/pricing, as of the date below.
PUBLISHED_PRICES_DATE = "2026-11-29"
PUBLISHED_PRICES: dict[str, dict[str, float]] = {
    "us-east-1": {
        "X86_64-vCPU": 0.04048,
        "X86_64-GB": 0.004445,
        "ARM64-vCPU": 0.03238,
        "ARM64-GB": 0.00356,
        "storage-GB": 0.000111,
    },
}
#: Ephemeral storage a task gets without charge (GiB).
EPHEMERAL_STORAGE_INCLUDED_GIB = 20
#: Billing: per second, from the start of the image pull until the task stops, with this
#: minimum per task.
BILLING_MINIMUM_SECONDS = 60
#: The Spot discount AWS advertises ("up to 70% off"). Spot prices float and are not
#: reliably in the Price List, so Spot is priced as On-Demand less a configured discount.
SPOT_DISCOUNT_ADVERTISED = 0.70

#: AWS Price List API: the only regions with an endpoint ("Using the AWS Price List Query
#: API", AWS Billing user guide; a client configured for another region cannot connect),
#: which one serves clients of a region prefix (nearest), and Fargate's offer.
PRICING_REGIONS = ("us-east-1", "eu-central-1", "ap-south-1")
PRICING_REGION_BY_PREFIX = {
    "eu-": "eu-central-1",
    "me-": "eu-central-1",
    "af-": "eu-central-1",
    "il-": "eu-central-1",
    "ap-": "ap-south-1",
}
PRICING_SERVICE_CODE = "AmazonECS"
#: Fargate usage types, without their region prefix, and the price each one gives.
PRICE_USAGE_TYPES = {
    "Fargate-vCPU-Hours:perCPU": "X86_64-vCPU",
    "Fargate-GB-Hours": "X86_64-GB",
    "Fargate-ARM-vCPU-Hours:perCPU": "ARM64-vCPU",
    "Fargate-ARM-GB-Hours": "ARM64-GB",
    "Fargate-EphemeralStorage-GB-Hours": "storage-GB",
}
#: Usage type prefix of each region (``USE1-Fargate-GB-Hours``).
USAGE_TYPE_PREFIXES = {
    "us-east-1": "USE1",
    "us-east-2": "USE2",
    "us-west-1": "USW1",
    "us-west-2": "USW2",
    "ca-central-1": "CAN1",
    "sa-east-1": "SAE1",
    "eu-west-1": "EU",
    "eu-west-2": "EUW2",
    "eu-west-3": "EUW3",
    "eu-central-1": "EUC1",
    "eu-north-1": "EUN1",
    "ap-northeast-1": "APN1",
    "ap-northeast-2": "APN2",
    "ap-southeast-1": "APS1",
    "ap-southeast-2": "APS2",
    "ap-south-1": "APS3",
}

#: Task lifecycle states, in order (``lastStatus``).
TASK_STATES = (
    "PROVISIONING",
    "PENDING",
    "ACTIVATING",
    "RUNNING",
    "DEACTIVATING",
    "STOPPING",
    "DEPROVISIONING",
    "STOPPED",
)

#: ``stopCode`` values ECS reports.
STOP_CODES = (
    "TaskFailedToStart",
    "EssentialContainerExited",
    "UserInitiated",
    "ServiceSchedulerInitiated",
    "SpotInterruption",
    "TerminationNotice",
)
#: States from which a task only goes on to STOPPED (Developer Guide, "Amazon ECS task
#: lifecycle"): a task in one of them, or whose ``desiredStatus`` is STOPPED, is stopping.
STOPPING_STATES = ("DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED")
#: Seconds a task typically spends between its container's exit and STOPPED, at most:
#: DEPROVISIONING (its ENI detached) takes tens of seconds ("Amazon ECS task lifecycle").
DEPROVISIONING_TYPICAL_MAX = 60

#: A Fargate Spot interruption, as DescribeTasks reports it (``stopCode``, ECS API
#: reference, Task; ``stoppedReason``, Developer Guide, "Fargate Spot termination
#: notices" / "AWS Fargate capacity providers"). AWS sends SIGTERM, then SIGKILL after
#: the container's stopTimeout (two minutes at most).
SPOT_INTERRUPTION_CODE = "SpotInterruption"
SPOT_INTERRUPTION_REASON = "Your Spot Task was interrupted."

#: RunTask failure reason when Fargate has no capacity in the zone.
CAPACITY_UNAVAILABLE = (
    "Capacity is unavailable at this time. Please try again later or in a different "
    "availability zone"
)

#: In RunTask's InvalidParameterException for a capacity provider strategy naming a
#: provider the ECS cluster does not have (e.g. FARGATE_SPOT on a cluster without it).
PROVIDER_NOT_ON_CLUSTER = "capacity provider that is not associated with the cluster"

#: Service Quotas codes (service code ``fargate``) for the account-wide vCPU quotas.
QUOTA_SERVICE_CODE = "fargate"
QUOTA_CODES = {"FARGATE": "L-3032A538", "FARGATE_SPOT": "L-36FBB829"}
QUOTA_NAMES = {
    "FARGATE": "Fargate On-Demand vCPU resource count",
    "FARGATE_SPOT": "Fargate Spot vCPU resource count",
}
#: The documented starting quota of a new account (vCPU).
QUOTA_DEFAULT = 6.0

#: RunTask failure reasons (prefixes) meaning the account runs as much as its quotas allow
#: now: room may appear when other tasks stop or a quota is raised. vCPU quota
#: (flightcontrol.dev, "ECS Concurrent vCPU Limit"); the concurrent task limits new
#: accounts still meet (wellcomecollection/platform#3875, aws/copilot-cli#3064, #2685).
QUOTA_FAILURES = (
    "You've reached the limit on the number of vCPUs you can run concurrently",
    "You've reached the limit on the number of tasks you can run concurrently",
    "You've reached the limit on the number of spot tasks you can run concurrently",
)
#: RunTask failure reason for a task larger than the account may run at all, whatever
#: else runs (dask/dask-cloudprovider#299; GitLab's Fargate driver, issue 41).
CPU_ABOVE_LIMIT = "The requested CPU configuration is above your limit"
CPU_ABOVE_LIMIT_HINT = (
    "this account may not run a task of this size: ask for a higher Fargate vCPU quota "
    "(`starburst-dask quota --request`) or use a smaller worker_cpu/scheduler_cpu"
)


#: IAM is eventually consistent: a role just created, or whose trust policy just changed,
#: is refused by ECS for a few seconds ("Changes that I make are not always immediately
#: visible", IAM user guide). ECS's answers then begin with these texts; a launch retries
#: them for at most IAM_PROPAGATION_WAIT seconds (a role that never works fails after).
IAM_PROPAGATION_ERRORS = (
    "ECS was unable to assume the role",
    "Unable to assume the service linked role",
)
IAM_PROPAGATION_WAIT = 60.0
#: CodeBuild's answer (InvalidInputException) to CreateProject with a service role it
#: cannot assume yet, as a just-created role is for seconds (AWS CodeBuild User Guide,
#: "Troubleshooting AWS CodeBuild": "CodeBuild is not authorized to perform:
#: sts:AssumeRole" when creating or updating a build project). Retried as above.
CODEBUILD_PROPAGATION_ERROR = "CodeBuild is not authorized to perform: sts:AssumeRole"


def pricing_region(region: str) -> str:
    """The Price List endpoint's region to ask from ``region`` (every answer covers all
    regions; only the endpoint differs)."""
    if region in PRICING_REGIONS:
        return region
    return next(
        (r for p, r in PRICING_REGION_BY_PREFIX.items() if region.startswith(p)), PRICING_REGIONS[0]
    )


def is_quota_failure(reason: str) -> bool:
    """Whether a RunTask ``failures`` reason says the account's quota is full now."""
    return reason.startswith(QUOTA_FAILURES)


#: CloudWatch metric of the account's current Fargate vCPU usage.
USAGE_NAMESPACE = "AWS/Usage"
USAGE_METRIC = "ResourceCount"
#: Seconds one datapoint of it covers: AWS publishes usage metrics every minute (Amazon
#: CloudWatch User Guide, "AWS usage metrics"; ECS Developer Guide, "AWS Fargate usage
#: metrics").
USAGE_PERIOD = 60
USAGE_CLASS = {"FARGATE": "Standard/OnDemand", "FARGATE_SPOT": "Standard/Spot"}


def usage_dimensions(capacity_provider: str) -> list[dict[str, str]]:
    """Dimensions of the ``AWS/Usage`` vCPU metric for a capacity provider."""
    return [
        {"Name": "Service", "Value": "Fargate"},
        {"Name": "Type", "Value": "Resource"},
        {"Name": "Resource", "Value": "vCPU"},
        {"Name": "Class", "Value": USAGE_CLASS[capacity_provider]},
    ]


#: Token buckets AWS applies per account and region: (burst, refill per second).
RATE_LIMITS: dict[str, tuple[float, float]] = {
    "fargate-run-task-calls": (20, 20.0),  # Fargate RunTask calls
    "fargate-task-launches": (100, 20.0),  # tasks launched (On-Demand and Spot each)
    "cluster-resource-modify": (100, 40.0),  # RunTask, StartTask, StopTask
    "cluster-resource-read": (100, 20.0),  # DescribeTasks, ListTasks
}
#: Which buckets each ECS action draws one token from.
ACTION_RATE_LIMITS: dict[str, tuple[str, ...]] = {
    "RunTask": ("fargate-run-task-calls", "cluster-resource-modify"),
    "StartTask": ("cluster-resource-modify",),
    "StopTask": ("cluster-resource-modify",),
    "DescribeTasks": ("cluster-resource-read",),
    "ListTasks": ("cluster-resource-read",),
}


def valid_memory(cpu: int) -> tuple[int, ...]:
    """Memory values (MiB) Fargate accepts for ``cpu`` units; empty if ``cpu`` is invalid."""
    return TASK_SIZES.get(cpu, ())


def check_task_size(cpu: int, memory: int) -> str | None:
    """Return why ``cpu``/``memory`` is not a Fargate task size, or ``None`` if it is.

    Parameters
    ----------
    cpu : int
        Task CPU units (1024 = 1 vCPU).
    memory : int
        Task memory in MiB.
    """
    if cpu not in TASK_SIZES:
        sizes = ", ".join(str(c) for c in TASK_SIZES)
        return f"{cpu} is not a Fargate CPU size; valid CPU units are {sizes}"
    if memory not in TASK_SIZES[cpu]:
        return (
            f"{memory} MiB is not valid with {cpu} CPU units; valid memory values are "
            f"{_ranges(TASK_SIZES[cpu])} MiB"
        )
    return None


def check_architecture(architecture: object) -> str | None:
    """Return why ``architecture`` is not a Fargate CPU architecture, or ``None`` if it is."""
    if architecture in ARCHITECTURES:
        return None
    return (
        f"{architecture!r} is not a Fargate CPU architecture; valid values are "
        f"{', '.join(repr(a) for a in ARCHITECTURES)}"
    )


def vcpus(cpu: int) -> float:
    """vCPUs in ``cpu`` CPU units."""
    return cpu / CPU_UNITS_PER_VCPU


def _ranges(values: tuple[int, ...]) -> str:
    """Render a size list compactly: ``1024, 2048, ... 8192 (every 1024)``."""
    if len(values) <= 3:
        return ", ".join(str(v) for v in values)
    step = values[1] - values[0]
    return f"{values[0]} to {values[-1]} in steps of {step}"
