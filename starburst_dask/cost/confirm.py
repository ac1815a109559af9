"""Expensive clusters confirmed before anything starts.

A cluster whose estimated hourly cost or requested vCPUs pass ``starburst.confirm.*``
asks at a terminal, naming the estimate; in a process without one (a script, a job, a
notebook kernel) it is refused unless ``FargateCluster(confirm=False)`` or the thresholds
allow it. Nothing is created before the answer: the estimate needs only the prices.
``scale`` and ``adapt`` past the thresholds are confirmed the same way (:class:`ScaleGuard`),
never from the cluster's event loop: ``adapt()`` without a maximum stays within them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import fargate
from ..errors import ConfirmationError
from ..format import format_usd

if TYPE_CHECKING:
    from ..options import ClusterOptions
    from .meter import CostMeter

#: Asks a yes/no question; True for yes.
Ask = Callable[[str], bool]


def requested_vcpus(options: ClusterOptions, n_workers: float | None = None) -> float:
    """vCPUs the cluster requests: its scheduler's and every worker's (``n_workers``,
    default the launch's)."""
    n = options.n_workers if n_workers is None else n_workers
    return fargate.vcpus(options.scheduler_cpu) + n * fargate.vcpus(options.worker_cpu)


def over_thresholds(
    meter: CostMeter, options: ClusterOptions, n_workers: float | None = None
) -> list[str]:
    """Which thresholds the cluster of ``n_workers`` (default: the launch's) passes, in
    words (empty: none)."""
    over = []
    hourly = options.confirm_hourly_cost
    if hourly is not None and _per_hour(meter, n_workers) > hourly:
        over.append(f"starburst.confirm.hourly-cost={hourly:g}")
    vcpus = requested_vcpus(options, n_workers)
    if options.confirm_vcpus is not None and vcpus > options.confirm_vcpus:
        over.append(f"starburst.confirm.vcpus={options.confirm_vcpus:g}")
    return over


def confirm_launch(
    meter: CostMeter,
    options: ClusterOptions,
    *,
    confirm: bool = True,
    interactive: Callable[[], bool] | None = None,
    ask: Ask | None = None,
) -> None:
    """Go ahead, or raise: a cluster over a threshold is asked about or refused.

    Parameters
    ----------
    meter, options
        The cluster's estimate and options.
    confirm : bool
        False: start without asking (the caller has decided).
    interactive, ask
        Whether a person can answer (default: stdin is a terminal), and how to ask them
        (default: :func:`input`); for tests.

    Raises
    ------
    ConfirmationError
        Declined at the terminal, or no terminal to ask at; nothing was started.
    """
    if confirm:
        _confirm(meter, options, None, "Start it?", "Nothing was started.", interactive, ask)


class ScaleGuard:
    """What a started cluster may scale to without asking again: ``scale`` and ``adapt``
    past ``starburst.confirm.*`` are confirmed as the launch was.

    Parameters
    ----------
    meter, options
        The cluster's estimate and options; its launch was confirmed already.
    confirm : bool
        The cluster's ``confirm``: False, never ask.
    """

    def __init__(self, meter: CostMeter, options: ClusterOptions, confirm: bool) -> None:
        self.meter, self.options, self.confirm = meter, options, confirm
        #: The most workers confirmed so far (or within the thresholds).
        self.confirmed: float = max(options.n_workers, self.most_unasked())

    def most_unasked(self) -> float:
        """The most workers within both thresholds (infinite without thresholds)."""
        most = math.inf
        hourly, vcpus = self.options.confirm_hourly_cost, self.options.confirm_vcpus
        if hourly is not None and self.meter.worker_rate > 0:
            most = min(most, (hourly - self.meter.scheduler_rate) / self.meter.worker_rate)
        if vcpus is not None:
            scheduler = requested_vcpus(self.options, 0)
            most = min(most, (vcpus - scheduler) / fargate.vcpus(self.options.worker_cpu))
        return max(math.floor(most), 0) if math.isfinite(most) else most

    def scale(
        self,
        n_workers: float,
        *,
        from_loop: bool = False,
        interactive: Callable[[], bool] | None = None,
        ask: Ask | None = None,
    ) -> None:
        """Allow scaling to ``n_workers``, or raise :class:`ConfirmationError`: past the
        thresholds, asked at a terminal (see :func:`confirm_launch`), never when called
        ``from_loop`` (the cluster's event loop, which a question would block)."""
        if not self.confirm or n_workers <= self.confirmed:
            return
        where = (lambda: False) if from_loop else interactive
        question = f"Scale to {n_workers:,g} workers?"
        _confirm(self.meter, self.options, n_workers, question, "Not scaled.", where, ask)
        self.confirmed = n_workers

    def adapt_maximum(self, maximum: float, log: Callable[[str], None], **how: Any) -> float:
        """``adapt``'s ``maximum``, allowed (see :meth:`scale`); without one, the most
        within the thresholds, said in a status line."""
        if math.isfinite(maximum) or not self.confirm or math.isinf(self.confirmed):
            self.scale(maximum, **how)
            return maximum
        log(
            f"Adapting up to {self.confirmed:,g} workers, the most within "
            f"{' and '.join(over_thresholds(self.meter, self.options, math.inf))}: pass "
            "adapt(maximum=...) for more (confirmed as scale is), or confirm=False"
        )
        return self.confirmed


def _per_hour(meter: CostMeter, n_workers: float | None) -> float:
    return meter.estimate_per_hour if n_workers is None else meter.per_hour(n_workers)


def _confirm(
    meter: CostMeter,
    options: ClusterOptions,
    n_workers: float | None,
    question: str,
    refused: str,
    interactive: Callable[[], bool] | None,
    ask: Ask | None,
) -> None:
    """Return if the cluster of ``n_workers`` (default: the launch's) passes no threshold
    or a person at the terminal says yes to ``question``; else raise, ending with
    ``refused``."""
    over = over_thresholds(meter, options, n_workers)
    if not over:
        return
    n = options.n_workers if n_workers is None else n_workers
    what = (
        f"this cluster would cost about {format_usd(_per_hour(meter, n_workers))} an hour "
        f"({meter.prices.source}) for {requested_vcpus(options, n):,g} vCPUs (a scheduler "
        f"and {n:,g} workers), above {' and '.join(over)}"
    )
    if (interactive or _at_terminal)():
        if (ask or _ask)(f"{question} {what[0].upper()}{what[1:]}. [y/N] "):
            return
        raise ConfirmationError(f"{refused.rstrip('.').lower()}: {what}, and the answer was no")
    raise ConfirmationError(
        f"{what}, and there is no terminal to confirm it at: pass confirm=False to the "
        "cluster to go ahead anyway, ask for fewer or smaller workers, or raise the "
        f"threshold in dask config (null: never ask). {refused}"
    )


def _at_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _ask(question: str) -> bool:
    return input(question).strip().lower() in ("y", "yes")
