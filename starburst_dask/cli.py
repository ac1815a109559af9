"""The ``starburst-dask`` command."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="starburst-dask")
def main() -> None:
    """Dask clusters on AWS Fargate."""


@main.command()
@click.option("--workers", default=3, show_default=True, help="Worker tasks to launch.")
@click.option("--simulations", default=10_000, show_default=True,
              help="Portfolio simulations to run.")
@click.option("--seed", default=42, show_default=True, help="Random seed.")
@click.option("--aws", "on_aws", is_flag=True,
              help="Run on the configured AWS account instead of a local Fargate.")
def demo(workers: int, simulations: int, seed: int, on_aws: bool) -> None:
    """Run a Monte Carlo portfolio simulation on a FargateCluster, then close it."""
    from .demo import run

    if workers < 1 or simulations < 1:
        raise click.BadParameter("--workers and --simulations must be at least 1")
    run(workers, simulations, seed, local=not on_aws, echo=click.echo)


@main.command()
@click.option("--port", default=5000, show_default=True, help="Port on 127.0.0.1.")
@click.option("--region", default="us-east-1", show_default=True, help="AWS region to emulate.")
def local(port: int, region: str) -> None:
    """Run a local Fargate: AWS APIs on this machine, ECS tasks as local processes."""
    from .local import serve

    serve(port=port, region=region)
