"""What ``--json`` prints, for the commands whose results are not plain data already;
and the text tables of the others.

One function per command; the shapes are documented in ``docs/cli.md`` and kept stable:
keys are added, never renamed or removed. Times are ISO 8601 strings, sizes bytes, ages
seconds; absent values are ``null``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click


def echo(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (times as ISO 8601 strings)."""
    click.echo(json.dumps(data, indent=2, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def cleanup(
    region: str,
    targets: Sequence[Any],
    left: Sequence[Any],
    *,
    dry_run: bool,
    stopped: Sequence[str] = (),
    problems: Sequence[str] = (),
) -> dict[str, Any]:
    """``cleanup --json``: the clusters whose tasks stop and what their clusters left."""
    return {
        "region": region,
        "dry_run": dry_run,
        "clusters": [c.to_json() for c in targets],
        "leftovers": [
            {"cluster": x.cluster, "kind": x.kind, "name": x.name, "arn": x.arn} for x in left
        ],
        "stopped_task_arns": list(stopped),
        "problems": list(problems),
    }


def teardown(
    region: str,
    found: Sequence[Any],
    done: Sequence[Any] | None,
    doomed: Sequence[Any],
    *,
    dry_run: bool,
) -> dict[str, Any]:
    """``teardown --json``: each resource with the action planned and, after ``--yes``,
    its outcome (from ``done``)."""
    outcome = {(r.kind, r.name): r for r in done or ()}
    resources = []
    for r in found:
        after = outcome.get((r.kind, r.name))
        resources.append(
            {
                **dataclasses.asdict(r),
                "action": "delete" if r in doomed else "keep",
                "result": None if after is None else after.status,
                "result_detail": None if after is None else after.detail,
            }
        )
    return {"region": region, "dry_run": dry_run, "resources": resources}


def image(result: Any) -> dict[str, Any]:
    """``image build --json``: the image's URI, tag, locked versions, and how it came."""
    return dataclasses.asdict(result)


def context(output: str, built: Any) -> dict[str, Any]:
    """``image render --json``: where the build context was written, and its tag."""
    return {
        "directory": output,
        "tag": built.tag,
        "platform": built.platform,
        "docker_platform": built.docker_platform,
        "versions": built.versions,
        "files": sorted(built.files),
    }


def images(repository: str, region: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``image ls --json``: the repository's tagged images, newest first."""
    return {
        "repository": repository,
        "region": region,
        "images": [
            {"tag": r["tag"], "digest": r["digest"], "size": r["size"], "pushed": r["pushed"]}
            for r in rows
        ],
    }


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    """Print ``rows`` under ``header`` as aligned text columns."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
