"""Docker Hub's pull rate limit for unauthenticated pulls, per source address.

Fargate pulls a Docker Hub image anonymously (no ``repositoryCredentials``), from the
address the task's traffic leaves by: its public IP, or its NAT gateway's, which every
task behind that NAT shares. Docker Hub counts those pulls per address over a window and
refuses the rest with ``toomanyrequests``, which ECS reports as the task's stopped reason.
Pulls through an ECR pull through cache are ECR's, not the task's, and do not count.
Figures and texts: :mod:`starburst_dask.fargate`; sources in ``docs/local-fargate.md``.
"""

from __future__ import annotations

import collections
import hashlib
import threading
import time

from .. import fargate


class PullLimit:
    """Anonymous Docker Hub pulls per source address, at most ``pulls`` per ``window`` s.

    Parameters
    ----------
    pulls : int
        Pulls an address may make in any ``window``.
    window : float
        Seconds.
    """

    def __init__(
        self,
        pulls: int = fargate.DOCKER_HUB_ANONYMOUS_PULLS,
        window: float = fargate.DOCKER_HUB_WINDOW_SECONDS,
    ) -> None:
        self.pulls = pulls
        self.window = window
        self._made: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def refused(self, host: str, name: str, reference: str, source: str | None) -> str | None:
        """Count a pull of ``host/name:reference`` from ``source``; the stopped reason if
        Docker Hub refuses it, else None (other registries, or no route: not counted)."""
        if host != fargate.DOCKER_HUB_UPSTREAM or source is None:
            return None
        now = time.monotonic()
        with self._lock:
            made = self._made[source]
            while made and made[0] <= now - self.window:
                made.popleft()
            if len(made) >= self.pulls:
                return fargate.DOCKER_HUB_TOO_MANY_REQUESTS.format(
                    name=name, reference=_digest(name, reference)
                )
            made.append(now)
        return None


def _digest(name: str, reference: str) -> str:
    """The manifest digest Docker Hub's URL carries (a stand-in: its images have none)."""
    if reference.startswith("sha256:"):
        return reference
    return "sha256:" + hashlib.sha256(f"{name}:{reference}".encode()).hexdigest()


_limit = PullLimit()


def install(limit: PullLimit) -> None:
    """Make ``limit`` the one tasks' pulls count against, until :func:`uninstall`."""
    global _limit
    _limit = limit


def uninstall() -> None:
    """Back to Docker Hub's figures, nothing counted."""
    install(PullLimit())


def limit() -> PullLimit:
    """The installed limit."""
    return _limit
