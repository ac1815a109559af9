"""The options several ``starburst-dask`` commands share."""

from __future__ import annotations

import click

JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
REGION = click.option(
    "--region", default=None, help="AWS region [default: starburst.region or the SDK's region]."
)
ECS_CLUSTER = click.option(
    "--ecs-cluster",
    "ecs_clusters",
    multiple=True,
    help="ECS cluster to look in (repeatable) [default: starburst.ecs-cluster].",
)
