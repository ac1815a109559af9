"""The ECS cluster tasks run in, with the Fargate capacity providers, and the CloudWatch
log group they write to."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .. import fargate
from ..aws import lookups, propagation
from ..aws.clients import SyncClients
from .managed import CREATED, EXISTS, FOREIGN, MANAGED_TAG, UPDATED, Resource, is_managed
from .roles import ECS_SERVICE_LINKED_ROLE

LOG_RETENTION_DAYS = 30

logger = logging.getLogger(__name__)


def _while_propagating(
    call: Callable[..., Any], notify: Callable[[str], None], **kwargs: Any
) -> Any:
    """``call(**kwargs)``, retried while ECS cannot use its service-linked role yet."""
    return propagation.while_propagating(
        call,
        fargate.IAM_PROPAGATION_ERRORS,
        f"the ECS service-linked role {ECS_SERVICE_LINKED_ROLE}",
        notify,
        **kwargs,
    )


def ensure_ecs_cluster(
    aws: SyncClients, name: str, notify: Callable[[str], None] = logger.info
) -> Resource:
    """The ECS cluster, with the FARGATE and FARGATE_SPOT capacity providers.

    A managed cluster that lacks them gets them added to the providers it has.
    """
    found = lookups.ecs_cluster(aws.ecs, name, tags=True)
    if found is None:
        _while_propagating(
            aws.ecs.create_cluster,
            notify,
            clusterName=name,
            capacityProviders=list(fargate.CAPACITY_PROVIDERS),
            defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
            tags=[{"key": MANAGED_TAG[0], "value": MANAGED_TAG[1]}],
        )
        return Resource("ECS cluster", name, CREATED, "FARGATE, FARGATE_SPOT")
    if not is_managed(lookups.tag_dict(found.get("tags"))):
        return Resource("ECS cluster", name, FOREIGN)
    have = list(found.get("capacityProviders") or [])
    missing = [p for p in fargate.CAPACITY_PROVIDERS if p not in have]
    if missing:
        strategy = found.get("defaultCapacityProviderStrategy") or [
            {"capacityProvider": "FARGATE", "weight": 1}
        ]
        _while_propagating(
            aws.ecs.put_cluster_capacity_providers,
            notify,
            cluster=name,
            capacityProviders=have + missing,
            defaultCapacityProviderStrategy=strategy,
        )
        return Resource("ECS cluster", name, UPDATED, f"added {', '.join(missing)}")
    return Resource("ECS cluster", name, EXISTS)


def ensure_log_group(aws: SyncClients, name: str) -> Resource:
    """The CloudWatch log group for task output, with a retention."""
    group = lookups.log_group(aws.logs, name)
    if group is None:
        aws.logs.create_log_group(logGroupName=name, tags=dict([MANAGED_TAG]))
        aws.logs.put_retention_policy(logGroupName=name, retentionInDays=LOG_RETENTION_DAYS)
        return Resource("log group", name, CREATED, f"retention {LOG_RETENTION_DAYS} days")
    if not is_managed(lookups.log_group_tags(aws.logs, group)):
        return Resource("log group", name, FOREIGN)
    if not group.get("retentionInDays"):
        aws.logs.put_retention_policy(logGroupName=name, retentionInDays=LOG_RETENTION_DAYS)
        return Resource("log group", name, UPDATED, f"retention {LOG_RETENTION_DAYS} days")
    return Resource("log group", name, EXISTS, f"retention {group['retentionInDays']} days")
