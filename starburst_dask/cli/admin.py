"""The account commands of ``starburst-dask``: setup, doctor, ls, cleanup, teardown,
iam-policy.

Thin: the work is in :mod:`.setup`, :mod:`.doctor` and :mod:`.inventory`. Exit codes:
0 success, 1 a failure (a failed check, an AWS or configuration error), 2 bad usage
(click's own).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from ..format import format_duration, format_usd
from . import shapes

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


def register(group: click.Group) -> None:
    """Add the commands of this module to ``group``."""
    for command in (setup, doctor, ls, cleanup, teardown, iam_policy):
        group.add_command(command)


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _seconds(value: str) -> float:
    from dask.utils import parse_timedelta

    try:
        return float(parse_timedelta(value, default="seconds"))
    except (ValueError, KeyError) as e:
        raise click.BadParameter(f"{value!r} is not a duration like 2h or 30m") from e


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
    _table(
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
    _table(rows, ("CLUSTER", "ECS CLUSTER", "AGE", "SCHEDULER", "WORKERS", "COST"))
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
        _table(
            [(c.name, c.ecs_cluster, format_duration(c.age()), len(c.tasks)) for c in targets],
            ("CLUSTER", "ECS CLUSTER", "AGE", "TASKS"),
        )
    if left:
        _table([(x.cluster, x.kind, x.name) for x in left], ("CLUSTER", "LEFT", "NAME"))


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
        _table(
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
