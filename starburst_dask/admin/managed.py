"""What setup manages: the tag that marks a resource as its own, the names it uses, and
the record of what it did to each resource."""

from __future__ import annotations

import dataclasses

from .. import config
from ..aws import names

#: Tag on every resource setup creates; teardown deletes only resources carrying it.
MANAGED_TAG = ("starburst-dask:managed", "true")
#: Name of the security group and ECR repository setup creates.
DEFAULT_NAME = "starburst-dask"

CREATED, UPDATED, EXISTS, FOREIGN = "created", "updated", "exists", "exists, not managed"
DELETED, KEPT = "deleted", "kept: not managed by starburst-dask"


@dataclasses.dataclass
class Resource:
    """One resource setup looked at: what it is, its name, and what setup did."""

    kind: str
    name: str
    status: str
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class Names:
    """Names of the resources setup manages, from the ``starburst.*`` config."""

    cluster: str
    execution_role: str
    task_role: str
    log_group: str
    security_group: str = DEFAULT_NAME
    repository: str = DEFAULT_NAME

    @classmethod
    def from_config(cls) -> Names:
        """The configured names (role ARNs are reduced to role names)."""

        def name(key: str) -> str:
            return names.role_name(str(config.setting(key)))

        return cls(
            cluster=name("ecs_cluster"),
            execution_role=name("execution_role"),
            task_role=name("task_role"),
            log_group=str(config.setting("log_group")),
        )


def is_managed(tags: dict[str, str]) -> bool:
    """Whether a resource's tags (as a dict) mark it as created by setup."""
    return tags.get(MANAGED_TAG[0]) == MANAGED_TAG[1]
