"""Money and durations as people read them: one rule each, used by every line we print."""

from __future__ import annotations

import math

from .fargate import vcpus


def format_usd(amount: float) -> str:
    """US dollars: cents from $10 (``$1,234.56``), three significant digits below
    (``$3.14``, ``$0.0247``, ``$0.000617``), so small clusters do not all read ``$0.00``.

    Parameters
    ----------
    amount : float
        US dollars.
    """
    if abs(amount) >= 10 or amount == 0:
        return f"${amount:,.2f}"
    decimals = max(2, 2 - math.floor(math.log10(abs(amount))))
    return f"${amount:.{decimals}f}"


def format_duration(seconds: float) -> str:
    """A duration in its two largest units: ``42s``, ``3m05s``, ``2h03m``, ``3d04h``.

    Parameters
    ----------
    seconds : float
        The duration; rounded down to whole seconds, negative counts as zero.
    """
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def format_task_size(cpu: int, memory: int) -> str:
    """A Fargate task size: ``1 vCPU / 4.00 GiB`` for ``cpu`` units and ``memory`` MiB."""
    from dask.utils import format_bytes  # dask reads its config at import: the CLI's, later

    return f"{vcpus(cpu):g} vCPU / {format_bytes(memory * 2**20)}"
