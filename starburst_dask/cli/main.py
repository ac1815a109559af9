"""The ``starburst-dask`` command."""

from __future__ import annotations

import click

from . import admin as cli_admin
from . import clusters as cli_clusters
from .errors import ReportingGroup
from .image import image
from .options import JSON


@click.group(cls=ReportingGroup)
@click.version_option(package_name="starburst-dask")
@click.option("--debug", is_flag=True, help="Show the traceback of an error.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Dask clusters on AWS Fargate."""
    import logging

    from .. import status

    # The library's status lines on stderr (stdout is for data, --json), while it runs.
    handler, package = status.StderrHandler(), logging.getLogger("starburst_dask")
    status.show()
    package.addHandler(handler)
    ctx.call_on_close(lambda: package.removeHandler(handler))


cli_admin.register(main)  # setup, doctor, teardown, iam-policy
cli_clusters.register(main)  # ls, cleanup
main.add_command(image)  # image build|render|ls


@main.command()
@click.option("--workers", default=3, show_default=True, help="Worker tasks to launch.")
@click.option(
    "--simulations", default=10_000, show_default=True, help="Portfolio simulations to run."
)
@click.option("--seed", default=42, show_default=True, help="Random seed.")
@click.option(
    "--aws",
    "on_aws",
    is_flag=True,
    help="Run on the configured AWS account instead of a local Fargate.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON (progress: stderr)."
)
def demo(workers: int, simulations: int, seed: int, on_aws: bool, as_json: bool) -> None:
    """Run a Monte Carlo portfolio simulation on a FargateCluster, then close it."""
    import dataclasses

    from ..demo import run
    from . import shapes

    if workers < 1 or simulations < 1:
        raise click.BadParameter("--workers and --simulations must be at least 1")
    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    result = run(workers, simulations, seed, local=not on_aws, echo=echo)
    if as_json:
        shapes.echo(dataclasses.asdict(result))


@main.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5000,
    show_default=True,
    help="Port on 127.0.0.1 (0: a free one).",
)
@click.option("--region", default="us-east-1", show_default=True, help="AWS region to emulate.")
@click.option(
    "--quota",
    type=click.FloatRange(min=0),
    default=None,
    help="On-Demand Fargate vCPU quota [default: a new account's].",
)
@click.option(
    "--latency",
    type=click.Choice(["aws", "fast"]),
    default=None,
    help="Task start and stop times: aws (as AWS takes them) or fast (sub-second) "
    "[default: config starburst.local.latency, aws].",
)
def local(port: int, region: str, quota: float | None, latency: str | None) -> None:
    """Run a local Fargate: AWS APIs on this machine, ECS tasks as local processes."""
    from ..local import serve

    try:
        serve(port=port, region=region, quota=quota, latency=latency)
    except OSError as e:
        raise click.ClickException(
            f"cannot serve on 127.0.0.1:{port} ({e.strerror or e}): pass another --port, "
            "or --port 0 for a free one"
        ) from None


@main.command()
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Clusters to list.",
)
@JSON
def cost(limit: int, as_json: bool) -> None:
    """List recent clusters with their runtime and cost, and today's and this month's totals.

    Clusters whose client died are brought up to date from their tasks in ECS first.
    Costs of clusters on a local endpoint are simulated: AWS's prices, no AWS bill.
    """
    import json

    from ..cost.ledger import report, summary
    from ..cost.reconcile import from_ecs

    # Clusters whose client died: their tasks' own times, from ECS (no call if none).
    problem = from_ecs()
    if problem:
        click.echo(f"Warning: {problem}", err=True)
    click.echo(json.dumps(summary(limit), indent=2) if as_json else report(limit))


@main.command()
@click.option(
    "--request",
    "vcpus",
    type=float,
    default=None,
    help="File an increase of the quota to this many vCPUs.",
)
@click.option("--spot", is_flag=True, help="With --request: the Spot quota, not On-Demand.")
@click.option("--region", default=None, help="AWS region (default: the configured one).")
@JSON
def quota(vcpus: float | None, spot: bool, region: str | None, as_json: bool) -> None:
    """Show the Fargate vCPU quotas, usage and open increase requests; --request one."""
    import asyncio
    import json

    from ..aws.lookups import region as checked_region
    from ..ecs.quota import account_report
    from ..errors import StarburstError

    region = checked_region(region)  # configured, and one where ECS runs
    if vcpus is not None and vcpus <= 0:
        raise click.BadParameter("--request takes a positive number of vCPUs")
    provider = "FARGATE_SPOT" if spot else "FARGATE"
    try:
        report = asyncio.run(account_report(region, vcpus, provider))
    except StarburstError as e:
        raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for q in report["quotas"]:
        limit = "unknown" if q["quota"] is None else f"{q['quota']:g}"
        click.echo(f"{q['name']} ({q['code']}): quota {limit} vCPU, in use {q['usage']:g}")
        for r in q["pending_requests"]:
            click.echo(f"  request {r['id']}: to {r['desired']:g} vCPU, {r['status']}")
    if "request" in report:
        r = report["request"]
        click.echo(
            f"Requested {r['desired']:g} vCPU: {r['status']} (request {r['id']}); "
            "approval can take hours to days"
        )
