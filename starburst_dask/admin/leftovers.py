"""What a cluster leaves when its client dies: its TLS secret and task definition revision.

A cluster removes both when it closes (:mod:`starburst_dask.cluster.tls`); one whose
client died cannot. ``starburst-dask cleanup`` and ``teardown`` find them: secrets named
``starburst-dask/<cluster>/tls`` carrying the cluster tag, and ACTIVE revisions of the
project's family whose container ``secrets`` reference such a secret. Those of a cluster
with a live task are kept, and so are those younger than :data:`STARTING_GRACE` (their
cluster may still be starting, before its first task), unless asked otherwise.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..aws.names import SECRET_PREFIX
from ..cluster.tls import secret_cluster
from ..ecs.tasks import FAMILY, TAG_CLUSTER, task_id

#: A secret or revision this young may belong to a cluster still starting (waiting for
#: room under the quota before its scheduler's task exists).
STARTING_GRACE = datetime.timedelta(minutes=15)


@dataclasses.dataclass(frozen=True)
class Leftover:
    """A cluster's secret or task definition revision."""

    kind: str  # "secret" or "task definition"
    cluster: str
    arn: str
    created: datetime.datetime | None

    @property
    def name(self) -> str:
        """How users read it: the secret's name, or ``family:revision``."""
        if self.kind == "secret":
            return self.arn.split(":secret:", 1)[-1]
        return task_id(self.arn)


def find(secrets: Any, ecs: Any) -> list[Leftover]:
    """Every cluster's TLS secret and task definition revision (ACTIVE) in the region."""
    found = []
    pages = secrets.get_paginator("list_secrets").paginate(
        Filters=[
            {"Key": "name", "Values": [SECRET_PREFIX]},
            {"Key": "tag-key", "Values": [TAG_CLUSTER]},
        ]
    )
    for page in pages:
        for secret in page["SecretList"]:
            cluster = secret_cluster(secret["Name"])
            tags = {t["Key"]: t["Value"] for t in secret.get("Tags", [])}
            if cluster is not None and tags.get(TAG_CLUSTER) == cluster:
                found.append(Leftover("secret", cluster, secret["ARN"], secret.get("CreatedDate")))
    pages = ecs.get_paginator("list_task_definitions").paginate(
        familyPrefix=FAMILY, status="ACTIVE"
    )
    for page in pages:
        for arn in page["taskDefinitionArns"]:
            definition = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
            cluster = definition_cluster(definition)
            if cluster is not None:
                found.append(
                    Leftover("task definition", cluster, arn, definition.get("registeredAt"))
                )
    return found


def definition_cluster(definition: dict[str, Any]) -> str | None:
    """The cluster whose TLS secret a task definition's container references, if any."""
    for container in definition.get("containerDefinitions", []):
        for secret in container.get("secrets", []):
            # <secret ARN>:<json key>::, the ARN's name ending in -<6 random characters>
            _, _, resource = secret["valueFrom"].partition(":secret:")
            name = resource.split(":", 1)[0].rsplit("-", 1)[0]
            cluster = secret_cluster(name)
            if cluster is not None:
                return cluster
    return None


def orphaned(
    leftovers: list[Leftover],
    live: set[str],
    older_than: float,
    now: datetime.datetime | None = None,
) -> list[Leftover]:
    """Those of clusters not in ``live`` (clusters with a task), created longer ago than
    ``older_than`` seconds or :data:`STARTING_GRACE`, whichever is shorter."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    grace = min(STARTING_GRACE, datetime.timedelta(seconds=older_than))
    return [
        left
        for left in leftovers
        if left.cluster not in live and (left.created is None or now - left.created >= grace)
    ]


def remove(secrets: Any, ecs: Any, leftovers: list[Leftover]) -> list[str]:
    """Delete secrets at once (no recovery window), deregister then delete revisions;
    the problems, in words (nothing raised: the rest is still removed)."""
    problems = []
    for left in leftovers:
        try:
            if left.kind == "secret":
                secrets.delete_secret(SecretId=left.arn, ForceDeleteWithoutRecovery=True)
            else:
                reasons = remove_definition(ecs, left.arn)
                problems += [f"task definition {left.name}: {r}" for r in reasons]
        except (ClientError, BotoCoreError) as e:  # said; the others are still removed
            problems.append(f"{left.kind} {left.name}: {e}")
    return problems


def remove_definition(ecs: Any, arn: str) -> list[str]:
    """Deregister a task definition revision, then delete it; why AWS did not delete it
    (DeleteTaskDefinitions answers refusals in ``failures``), if it did not."""
    ecs.deregister_task_definition(taskDefinition=arn)
    answer = ecs.delete_task_definitions(taskDefinitions=[arn])
    return [str(f.get("reason")) for f in answer.get("failures", [])]
