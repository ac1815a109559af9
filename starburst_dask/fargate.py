"""AWS Fargate figures, in one place.

Every limit, size and identifier the project depends on lives here as data, so the
cluster, its validation and the local Fargate agree with each other and with AWS.
Sources: AWS ECS service quotas, the RunTask/DescribeTasks API references and the
Fargate task-size table (see ``docs/architecture.md``).
"""

from __future__ import annotations

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

#: Most task ids one DescribeTasks call accepts.
DESCRIBE_TASKS_MAX = 100

#: Most results one ListTasks page returns.
LIST_TASKS_MAX = 100

#: Container ``stopTimeout``: seconds between SIGTERM and SIGKILL (default, maximum).
STOP_TIMEOUT_DEFAULT = 30
STOP_TIMEOUT_MAX = 120

#: Capacity providers a Fargate cluster carries.
CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")

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

#: RunTask failure reason when Fargate has no capacity in the zone.
CAPACITY_UNAVAILABLE = (
    "Capacity is unavailable at this time. Please try again later or in a different "
    "availability zone"
)

#: Service Quotas codes (service code ``fargate``) for the account-wide vCPU quotas.
QUOTA_SERVICE_CODE = "fargate"
QUOTA_CODES = {"FARGATE": "L-3032A538", "FARGATE_SPOT": "L-36FBB829"}


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


def vcpus(cpu: int) -> float:
    """vCPUs in ``cpu`` CPU units."""
    return cpu / CPU_UNITS_PER_VCPU


def _ranges(values: tuple[int, ...]) -> str:
    """Render a size list compactly: ``1024, 2048, ... 8192 (every 1024)``."""
    if len(values) <= 3:
        return ", ".join(str(v) for v in values)
    step = values[1] - values[0]
    return f"{values[0]} to {values[-1]} in steps of {step}"
