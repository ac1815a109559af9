"""The running clusters' commands of ``starburst-dask``: ls, cleanup.

Thin: the work is in :mod:`..admin.inventory` (the project's tasks by tag),
:mod:`..admin.leftovers` and :mod:`..cost.reconcile`. Exit codes as in :mod:`.admin`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from ..format import format_duration, format_usd
from . import shapes
from .options import ECS_CLUSTER, JSON, REGION
from .shapes import table


def register(group: click.Group) -> None:
    """Add the commands of this module to ``group``."""
    for command in (ls, cleanup):
        group.add_command(command)


def _seconds(value: str) -> float:
    from dask.utils import parse_timedelta

    try:
        return float(parse_timedelta(value, default="seconds"))
    except (ValueError, KeyError) as e:
        raise click.BadParameter(f"{value!r} is not a duration like 2h or 30m") from e


def _clusters(region: str | None, ecs_clusters: tuple[str, ...]) -> tuple[Any, list[Any]]:
    from .. import config
    from ..admin import inventory
    from ..aws import lookups
    from ..aws.clients import SyncClients
    from ..cost import reconcile

    aws = SyncClients(lookups.region(region))
    names = list(ecs_clusters) or [str(config.setting("ecs_cluster"))]
    found = inventory.scan(aws.ecs, names)
    # The same pass brings clusters whose client died up to date in the cost ledger.
    problem = reconcile.from_tasks(found.descriptions, aws.region)
    if problem:
        click.echo(f"Warning: {problem}", err=True)
    return aws.ecs, found.clusters


@click.command()
@REGION
@ECS_CLUSTER
@click.option(
    "--cost/--no-cost",
    default=True,
    show_default=True,
    help="Show what each cluster cost so far (needs the Price List API or the published prices).",
)
@JSON
def ls(region: str | None, ecs_clusters: tuple[str, ...], cost: bool, as_json: bool) -> None:
    """List running dask clusters: age, task counts and, when known, cost so far."""
    from ..admin import inventory

    ecs, infos = _clusters(region, ecs_clusters)
    costs = inventory.cost_so_far(infos, ecs.meta.region_name) if infos and cost else {}
    simulated = inventory.simulated()
    if as_json:
        data = [
            {**c.to_json(), "cost_usd": costs.get(c.name), "cost_simulated": simulated}
            for c in infos
        ]
        click.echo(json.dumps(data, indent=2))
        return
    if not infos:
        click.echo("No running clusters.")
        return
    rows = []
    for c in infos:
        cost_so_far = costs.get(c.name)
        rows.append(
            (
                c.name,
                c.ecs_cluster,
                format_duration(c.age()),
                c.roles["scheduler"],
                c.roles["worker"],
                "?" if cost_so_far is None else format_usd(cost_so_far),
            )
        )
    table(rows, ("CLUSTER", "ECS CLUSTER", "AGE", "SCHEDULER", "WORKERS", "COST"))
    if simulated and costs:
        click.echo("Costs are simulated: AWS's prices applied to tasks of a local endpoint.")


@click.command()
@REGION
@ECS_CLUSTER
@click.option(
    "--older-than",
    default="2h",
    show_default=True,
    help="Stop clusters started longer ago than this.",
)
@click.option(
    "--cluster",
    "names",
    multiple=True,
    help="Stop this dask cluster whatever its age (repeatable).",
)
@click.option("--yes", is_flag=True, help="Stop them; without it, only show what would stop.")
@JSON
def cleanup(
    region: str | None,
    ecs_clusters: tuple[str, ...],
    older_than: str,
    names: tuple[str, ...],
    yes: bool,
    as_json: bool,
) -> None:
    """Stop tasks that clients left behind, and remove what their clusters leave; a dry
    run unless --yes.

    Only tasks carrying the project's tags (starburst-dask:cluster and
    starburst-dask:role) are ever stopped. Candidates: clusters older than
    --older-than, workers whose scheduler is gone, and clusters named by --cluster.
    Then the TLS secrets (starburst-dask/<cluster>/tls) and task definition revisions of
    clusters with no task left, older than --older-than or 15 minutes (whichever is
    shorter: a younger one's cluster may still be starting).
    """
    from ..admin import inventory, leftovers
    from ..aws.clients import SyncClients

    seconds = _seconds(older_than)
    ecs, infos = _clusters(region, ecs_clusters)
    targets = [c for c in infos if c.name in names] if names else inventory.orphans(infos, seconds)
    secrets = SyncClients(ecs.meta.region_name).secrets
    live = {c.name for c in infos} - {c.name for c in targets}
    # Named clusters' whatever their age; the others' once past the grace.
    left = leftovers.orphaned(leftovers.find(secrets, ecs), live, 0 if names else seconds)
    if names:
        left = [x for x in left if x.cluster in names]
        unknown = sorted(set(names) - {c.name for c in targets} - {x.cluster for x in left})
        if unknown:
            raise click.ClickException(
                f"no cluster named {', '.join(unknown)} has tasks or leftovers in "
                f"{', '.join(ecs_clusters) or 'the configured ECS cluster'} "
                f"({ecs.meta.region_name}): `starburst-dask ls` lists the clusters"
            )
    where = ecs.meta.region_name
    if as_json and not (yes and (targets or left)):
        shapes.echo(shapes.cleanup(where, targets, left, dry_run=not yes))
        return
    if not as_json:
        if not targets and not left:
            click.echo("Nothing to clean up.")
            return
        _cleanup_table(targets, left)
        if not yes:
            click.echo("Dry run: rerun with --yes to stop these tasks and remove these.")
            return
    stopped = inventory.stop(ecs, targets, "starburst-dask cleanup")
    problems = leftovers.remove(secrets, ecs, left)
    if as_json:
        shapes.echo(
            shapes.cleanup(where, targets, left, dry_run=False, stopped=stopped, problems=problems)
        )
    else:
        removed = len(left) - len(problems)
        click.echo(f"Stopped {len(stopped)} tasks; removed {removed} left behind.")
    for problem in problems:
        click.echo(f"could not remove {problem}", err=True)
    if problems:
        raise SystemExit(1)


def _cleanup_table(targets: Sequence[Any], left: Sequence[Any]) -> None:
    if targets:
        table(
            [(c.name, c.ecs_cluster, format_duration(c.age()), len(c.tasks)) for c in targets],
            ("CLUSTER", "ECS CLUSTER", "AGE", "TASKS"),
        )
    if left:
        table([(x.cluster, x.kind, x.name) for x in left], ("CLUSTER", "LEFT", "NAME"))
