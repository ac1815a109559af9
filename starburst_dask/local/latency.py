"""How long a Fargate task's lifecycle takes: the local Fargate's table of latencies.

Each phase's time is drawn per task, uniformly from a range around what AWS's tasks take
(sources in ``docs/local-fargate.md``, "Start-up and stop latencies"):

- PROVISIONING: Fargate finds capacity and creates the task's ENI (its private IP then
  appears in the attachment's details), then attaches it; the task is PENDING once the
  attachment is ATTACHED.
- PENDING: the image pull, whose time is the image's compressed size over a pull rate
  (no image cache on Fargate: every task pulls its whole image).
- DEPROVISIONING: after the container exited, the ENI is detached and deleted before
  STOPPED.

Two profiles: ``"aws"`` (the default: the local Fargate is as slow as AWS) and ``"fast"``
(sub-second, for test suites), chosen with ``LocalFargate(latency=...)`` or the config key
``starburst.local.latency`` (``DASK_STARBURST__LOCAL__LATENCY=fast``).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from typing import Any

import dask.config

#: A range of seconds (or of a rate), drawn from uniformly.
Range = tuple[float, float]
#: The config key naming the default profile.
CONFIG_KEY = "starburst.local.latency"
MB = 1_000_000


@dataclasses.dataclass(frozen=True)
class Latency:
    """The lifecycle delays of the local Fargate's tasks, each a range drawn per task.

    Attributes
    ----------
    eni_created : (float, float)
        Seconds from RunTask until the task's ENI exists (attachment ``CREATED``, its
        ``privateIPv4Address`` in the details); the task is PROVISIONING.
    eni_attached : (float, float)
        Seconds from then until the attachment is ``ATTACHED`` and the task PENDING
        (``ATTACHING`` half-way).
    pull_rate : (float, float)
        Megabytes (10^6 bytes) of compressed image pulled per second while PENDING.
    deprovisioning : (float, float)
        Seconds a task stays DEPROVISIONING (its ENI ``DETACHING``) after its container
        exited, before STOPPED.
    """

    eni_created: Range
    eni_attached: Range
    pull_rate: Range
    deprovisioning: Range

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            try:
                low, high = (float(v) for v in value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"latency {field.name} must be a (low, high) range of numbers, not {value!r}"
                ) from None
            positive = field.name == "pull_rate"
            if (low <= 0 if positive else low < 0) or low > high:
                bound = "0 < low" if positive else "0 <= low"
                raise ValueError(f"latency {field.name} must be {bound} <= high, not {value!r}")
            object.__setattr__(self, field.name, (low, high))

    def draw(self, name: str) -> float:
        """One task's value of the range ``name``."""
        low, high = getattr(self, name)
        return random.uniform(low, high)

    def pull_seconds(self, compressed_bytes: int) -> float:
        """One task's pull time for an image of ``compressed_bytes``."""
        return compressed_bytes / (self.draw("pull_rate") * MB)


#: The named profiles.
PROFILES: dict[str, Latency] = {
    # As AWS's tasks take (docs/local-fargate.md has each figure's source).
    "aws": Latency(
        eni_created=(3.0, 8.0),
        eni_attached=(5.0, 12.0),
        pull_rate=(7.0, 12.0),
        deprovisioning=(30.0, 60.0),
    ),
    # Sub-second: every phase still happens, and a poller can see it.
    "fast": Latency(
        eni_created=(0.02, 0.05),
        eni_attached=(0.02, 0.05),
        pull_rate=(2000.0, 5000.0),
        deprovisioning=(0.1, 0.3),
    ),
}
DEFAULT_PROFILE = "aws"

#: What ``LocalFargate(latency=...)`` accepts: a profile's name, a :class:`Latency`, or a
#: mapping of ranges over the ``"aws"`` profile's.
LatencySpec = str | Latency | Mapping[str, Any] | None


def resolve(spec: LatencySpec = None) -> Latency:
    """The :class:`Latency` ``spec`` names.

    Parameters
    ----------
    spec : str, Latency, mapping or None
        A profile's name (``"aws"``, ``"fast"``); a :class:`Latency`; a mapping of some of
        its ranges, the others the ``"aws"`` profile's; ``None``: the profile the config
        key ``starburst.local.latency`` names (``"aws"`` unless set).

    Raises
    ------
    ValueError
        An unknown profile, field or range, naming the valid ones.
    """
    if spec is None:
        spec = dask.config.get(CONFIG_KEY, None) or DEFAULT_PROFILE
    if isinstance(spec, Latency):
        return spec
    if isinstance(spec, str):
        if spec not in PROFILES:
            raise ValueError(
                f"unknown latency profile {spec!r}: use one of {', '.join(PROFILES)} "
                f"(config {CONFIG_KEY}), or explicit ranges"
            )
        return PROFILES[spec]
    names = {f.name for f in dataclasses.fields(Latency)}
    unknown = sorted(set(spec) - names)
    if unknown:
        raise ValueError(
            f"unknown latency range {unknown[0]!r}: the ranges are {', '.join(sorted(names))}"
        )
    return dataclasses.replace(PROFILES[DEFAULT_PROFILE], **spec)
