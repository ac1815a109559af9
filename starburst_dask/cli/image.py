"""``starburst-dask image build|render|ls``: environment images from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from .. import fargate
from . import shapes
from .options import JSON

#: Conda's names of Fargate's platforms, X86_64 first.
PLATFORMS = tuple(fargate.CONDA_PLATFORMS.values())
_SOFTWARE = click.argument("software", default="current")
_PLATFORM = click.option(
    "--platform",
    type=click.Choice(PLATFORMS),
    default=PLATFORMS[0],
    show_default=True,
    help="Fargate X86_64 (linux-64) or ARM64.",
)


@click.group()
def image() -> None:
    """Images from environment.yml, conda-lock.yml, or the current environment."""


@image.command()
@_SOFTWARE
@_PLATFORM
@click.option(
    "--repository",
    default=None,
    help="ECR repository [default: config starburst.image-repository].",
)
@click.option(
    "--builder",
    type=click.Choice(["auto", "docker", "codebuild"]),
    default="auto",
    show_default=True,
    help="auto: the local Docker engine if one answers, else CodeBuild.",
)
@click.option("--region", default=None, help="AWS region [default: the SDK's].")
@JSON
def build(
    software: str,
    platform: str,
    repository: str | None,
    builder: str,
    region: str | None,
    as_json: bool,
) -> None:
    """Lock SOFTWARE (a file, or 'current') and build its image unless ECR has it.

    Prints the image URI to pass as FargateCluster(image=...).
    """
    import boto3

    from ..aws import lookups
    from ..images.build import ensure_image

    region = lookups.region(region) if region else None  # one where ECR runs, if given
    session = boto3.session.Session(region_name=region)
    result = ensure_image(
        software,
        platform=platform,
        repository=repository,
        builder=builder,
        session=session,
        progress=lambda line: click.echo(line, err=True),
    )
    if as_json:
        shapes.echo(shapes.image(result))
    else:
        click.echo(result.uri)


@image.command()
@_SOFTWARE
@_PLATFORM
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("starburst-image"),
    show_default=True,
    help="Directory for the build context.",
)
@JSON
def render(software: str, platform: str, output: Path, as_json: bool) -> None:
    """Write SOFTWARE's build context (Dockerfile and lock) to build by hand."""
    from ..images.build import build_context

    context = build_context(software, platform)
    output.mkdir(parents=True, exist_ok=True)
    for name, text in context.files.items():
        (output / name).write_text(text)
    if as_json:
        shapes.echo(shapes.context(str(output), context))
    else:
        click.echo(f"{output}/ (tag {context.tag}, {context.docker_platform})")


@image.command(name="ls")
@click.option(
    "--repository",
    default=None,
    help="ECR repository [default: config starburst.image-repository].",
)
@click.option("--region", default=None, help="AWS region [default: the SDK's].")
@JSON
def list_images(repository: str | None, region: str | None, as_json: bool) -> None:
    """List the images in the ECR repository, newest first."""
    import boto3

    from .. import config
    from ..aws import lookups
    from ..aws.clients import command_config
    from ..images import registry

    region = lookups.region(region) if region else None  # one where ECR runs, if given
    repository = repository or config.setting("image_repository")
    ecr = boto3.session.Session(region_name=region).client("ecr", config=command_config())
    if lookups.repository(ecr, repository) is None:
        raise click.ClickException(
            f"ECR repository {repository!r} does not exist in {ecr.meta.region_name}: pass "
            "--repository with one that does, or run `starburst-dask setup` to create the "
            "project's"
        )
    rows = registry.list_images(ecr, repository)
    if as_json:
        shapes.echo(shapes.images(repository, ecr.meta.region_name, rows))
        return
    if not rows:
        click.echo(f"no images in {repository}")
    for row in rows:
        size = f"{row['size'] / 2**20:.0f} MiB" if row["size"] else "?"
        click.echo(f"{row['tag']}\t{size}\t{row['pushed'] or ''}\t{row['digest'][:19]}")
