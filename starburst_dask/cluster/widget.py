"""The rows the cluster adds to distributed's notebook widget (``_repr_html_``, the Status
tab of ``_widget``, redrawn every ``distributed.deploy.cluster-repr-interval``): the vCPU
quota and its usage, the workers requested, running by capacity provider (Spot,
On-Demand) and waiting for quota, and the cost."""

from __future__ import annotations

import html
import math

from ..cost.meter import CostMeter
from ..ecs.quota import QuotaStatus

PROVIDERS = {"FARGATE": "On-Demand", "FARGATE_SPOT": "Spot"}
_CELL = '<td style="text-align: left;"{span}><strong>{label}:</strong> {text}</td>'


def _row(*cells: tuple[str, str]) -> str:
    span = ' colspan="2"' if len(cells) == 1 else ""
    tds = (_CELL.format(span=span, label=label, text=html.escape(text)) for label, text in cells)
    return "<tr>" + "".join(tds) + "</tr>"


def rows(quota: QuotaStatus, requested: int, cost: CostMeter | None) -> str:
    """The widget's rows for this quota status, requested count and cost meter."""
    limit = "unknown" if math.isinf(quota.quota) else f"{quota.quota:g} vCPU"
    running = f"{quota.running} running"
    if quota.providers:
        running += f" ({quota.describe_providers()})"
    html_rows = _row(
        ("Quota", f"{limit} {PROVIDERS[quota.capacity_provider]}, {quota.usage:g} in use"),
        ("Workers", f"{requested} requested, {running}, {quota.waiting} waiting for quota"),
    )
    return (cost.html_row() if cost is not None else "") + html_rows
