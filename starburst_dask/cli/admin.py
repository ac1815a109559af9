"""The account commands of ``starburst-dask``: setup, doctor, teardown, iam-policy.

Thin: the work is in :mod:`.setup`, :mod:`.doctor` and :mod:`.teardown`. Exit codes:
0 success, 1 a failure (a failed check, an AWS or configuration error), 2 bad usage
(click's own).
"""

from __future__ import annotations

import json

import click

from . import shapes
from .options import JSON, REGION
from .shapes import table


def register(group: click.Group) -> None:
    """Add the commands of this module to ``group``."""
    for command in (setup, doctor, teardown, iam_policy):
        group.add_command(command)


@click.command()
@REGION
@click.option("--vpc", default=None, help="VPC for the tasks [default: the default VPC].")
@click.option(
    "--subnets",
    multiple=True,
    help="Subnet for the tasks (repeatable; two or more zones) "
    "[default: the VPC's default subnets].",
)
@click.option(
    "--allow-cidr",
    "allow_cidrs",
    multiple=True,
    help="Your network, which may reach the scheduler and dashboard ports "
    "(repeatable), e.g. your public IP/32; the cluster's own tasks always "
    "reach each other. Together at most a /16 (65,536 addresses; IPv6: a /48) "
    "unless --allow-wide-network.",
)
@click.option(
    "--allow-wide-network",
    is_flag=True,
    help="Allow --allow-cidr networks that together cover more than a /16 "
    "(up to the whole internet).",
)
@click.option(
    "--allow-my-ip",
    is_flag=True,
    help="Admit this machine's current public address too, as "
    "starburst.setup.checkip-url (https://checkip.amazonaws.com) answers it. "
    "Without this or --allow-cidr, at a terminal, setup offers it when the "
    "scheduler port would be closed to you.",
)
@click.option(
    "--s3-bucket", default=None, help="Bucket the tasks may read and write (their only permission)."
)
@click.option(
    "--docker-hub-secret",
    default=None,
    metavar="ARN",
    help="Secrets Manager secret (named ecr-pullthroughcache/...) with Docker Hub "
    "credentials: clusters pull Docker Hub images through an ECR pull "
    "through cache rule, free of Docker Hub's anonymous limit per address.",
)
@click.option(
    "--codebuild/--no-codebuild",
    default=None,
    help="Create the CodeBuild project, its role and S3 bucket that build the images "
    "of your environment [default: when no local Docker engine runs].",
)
@JSON
def setup(
    region: str | None,
    vpc: str | None,
    subnets: tuple[str, ...],
    allow_cidrs: tuple[str, ...],
    allow_my_ip: bool,
    allow_wide_network: bool,
    s3_bucket: str | None,
    docker_hub_secret: str | None,
    codebuild: bool | None,
    as_json: bool,
) -> None:
    """Create (or find) everything a cluster needs, once; safe to rerun.

    The ECS cluster, IAM roles, log group, security group and ECR repository, each
    tagged starburst-dask:managed=true, and a dask config file naming them, so that
    FargateCluster() needs no arguments. An option that cannot be applied (to a resource
    setup did not create) is an error, and nothing is changed.
    """
    import sys

    from ..admin import setup as resources

    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not as_json
    subnet_list = [s for value in subnets for s in value.split(",") if s]
    result = resources.setup(
        region,
        vpc=vpc,
        subnets=subnet_list,
        allow_cidrs=list(allow_cidrs),
        allow_my_ip=allow_my_ip,
        allow_wide_network=allow_wide_network,
        ask=_confirm if interactive else None,
        s3_bucket=s3_bucket,
        docker_hub_secret=docker_hub_secret,
        codebuild=codebuild,
        notify=lambda line: click.echo(line, err=True),
    )
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    table(
        [(r.kind, r.status, r.name, r.detail) for r in result.resources],
        ("RESOURCE", "STATUS", "NAME", "DETAIL"),
    )
    quota = "unknown" if result.quota is None else f"{result.quota:g}"
    click.echo(f"Fargate vCPU quota ({result.region}): {quota}")
    click.echo(
        "Created or changed what was missing."
        if result.changed
        else "Nothing changed: everything was set up already."
    )


def _confirm(question: str) -> bool:
    return click.confirm(question, default=True, err=True)


@click.command()
@REGION
@click.option(
    "--allow-wide-network",
    is_flag=True,
    help="Only warn when the security group admits networks wider than a /16 together "
    "(as setup --allow-wide-network does).",
)
@JSON
def doctor(region: str | None, allow_wide_network: bool, as_json: bool) -> None:
    """Check credentials, region, resources, permissions, quota and image, in order.

    Exits 1 if any check fails; warnings do not fail.
    """
    from ..admin import doctor as checks

    results = []
    for check in checks.checks(region, allow_wide_network=allow_wide_network):
        results.append(check)
        if not as_json:
            fix = f"  -> {check.fix}" if check.fix and check.status != checks.OK else ""
            click.echo(f"[{check.status:>4}] {check.name}: {check.detail}{fix}")
    if as_json:
        click.echo(json.dumps(checks.as_json(results), indent=2))
    if checks.failed(results):
        raise SystemExit(1)


@click.command()
@REGION
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@JSON
def teardown(region: str | None, yes: bool, as_json: bool) -> None:
    """Delete what setup created (only resources tagged starburst-dask:managed=true).

    With --json, nothing is asked: without --yes it is a dry run.

    Refused, deleting nothing, while the ECS cluster has tasks that are not stopped
    (whoever started them): the error names them and how to stop them.
    """
    from ..admin import managed
    from ..admin import teardown as resources

    aws, found = resources.managed_resources(region)
    doomed = [r for r in found if r.status == managed.EXISTS]
    if as_json and not (yes and doomed):
        shapes.echo(shapes.teardown(aws.region, found, None, doomed, dry_run=not yes))
        return
    if not as_json:
        table(
            [(r.kind, r.name, "delete" if r in doomed else r.status) for r in found],
            ("RESOURCE", "NAME", "ACTION"),
        )
        if not doomed:
            click.echo("Nothing to delete.")
            return
    resources.check_unused(aws, found)
    if not yes:
        click.confirm(f"Delete these {len(doomed)} resources?", abort=True)
    done = resources.teardown(aws, found)
    failures = [r for r in done if r.status == "failed"]
    for r in failures:
        click.echo(f"could not delete {r.kind} {r.name}: {r.detail}", err=True)
    if as_json:
        shapes.echo(shapes.teardown(aws.region, found, done, doomed, dry_run=False))
    else:
        click.echo(f"Deleted {sum(r.status == managed.DELETED for r in done)} resources.")
    if failures:
        raise SystemExit(1)


@click.command("iam-policy")
@click.option(
    "--setup", "for_setup", is_flag=True, help="Also what setup, doctor, cleanup and teardown need."
)
@click.option(
    "--images/--no-images",
    default=True,
    show_default=True,
    help="What building images of your environment needs (clusters without image= do); "
    "--no-images if you always pass image=.",
)
def iam_policy(for_setup: bool, images: bool) -> None:
    """Print the least-privilege IAM policy (JSON) for running clusters.

    Attach it to the IAM user or role that runs FargateCluster; iam:PassRole is limited
    to the project's execution and task roles.
    """
    from ..admin.policy import policy_document

    click.echo(json.dumps(policy_document(setup=for_setup, images=images), indent=2))
