"""When to relaunch workers that stopped by themselves, and when to give up.

A worker that ran and served its scheduler is replaced at once. A worker that stopped
before it ever joined (its image cannot start, its command fails, it is killed at
once) counts as a failure: replacements back off exponentially, and after too many
failures in a row the cluster stops replacing and says why, instead of paying for a
task that can never work, forever. As ECS's deployment circuit breaker counts: too many
is half the workers wanted (at least ``max_failures``, at most 200), and a worker that
joins starts the count again, so a burst of failures among many workers starting at
once (a busy image registry, a slow start) is replaced, not given up on.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

from .. import fargate


@dataclasses.dataclass
class ReplacementPolicy:
    """Consecutive worker failures, the delay before the next replacement, and the limit.

    Parameters
    ----------
    max_failures : int
        Consecutive workers that stop without joining before replacing stops, for up to
        twice as many workers wanted; half the workers wanted, for more (at most 200).
    base_delay, max_delay : float
        Seconds before the replacement after the first failure, doubling with each
        further failure, capped at ``max_delay``.
    """

    max_failures: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    #: Workers in a row that stopped before they joined their scheduler.
    failures: int = 0
    #: Why the latest of them stopped (ECS's words, exit code, last log lines).
    last_reason: str = ""
    #: Failures in a row that stop replacing, for the workers wanted at the latest one.
    limit: int = dataclasses.field(init=False)
    #: Names of workers that reached their scheduler: one that never did has failed.
    joined: set[str] = dataclasses.field(default_factory=set)

    def __post_init__(self) -> None:
        self.limit = self.max_failures

    def join(self, names: Iterable[str]) -> None:
        """Workers reached their scheduler: the failures in a row start again from zero."""
        self.joined.update(names)
        self.failures, self.last_reason = 0, ""

    def stopped(self, joined: bool, reason: str, wanted: int = 0) -> None:
        """Note a worker that stopped by itself while ``wanted`` workers were wanted;
        ``joined``: it had served its scheduler."""
        if joined:
            self.failures, self.last_reason = 0, ""
        else:
            self.failures += 1
            self.last_reason = reason
            share = math.ceil(fargate.CIRCUIT_BREAKER_SHARE * wanted)
            self.limit = min(fargate.CIRCUIT_BREAKER_MAX, max(self.max_failures, share))

    @property
    def exhausted(self) -> bool:
        """Whether to stop replacing: too many workers in a row failed."""
        return self.failures >= self.limit

    @property
    def delay(self) -> float:
        """Seconds to wait before launching the next replacement."""
        if not self.failures:
            return 0.0
        return min(self.max_delay, self.base_delay * 2 ** (self.failures - 1))

    def error(self) -> str:
        """The message once replacing has stopped."""
        return (
            f"{self.failures} worker tasks in a row stopped before joining the scheduler; "
            f"no more replacements are launched. The last one: {self.last_reason}. Fix the "
            "cause (image, command, environment), then call cluster.scale(n) to try again"
        )
