"""One cluster's TLS on AWS: its certificates delivered to its tasks, and removed after.

The tasks' certificate and key travel in a per-cluster Secrets Manager secret
(``starburst-dask/<cluster>/tls``), which the task definition's container ``secrets``
reference by JSON key: ECS puts them into the container's environment at start, read with
the execution role. So no key is in the task definition, a RunTask request, a
DescribeTasks answer or a log. That task definition revision is the cluster's own: both
are removed when the cluster closes, and ``starburst-dask cleanup`` removes those a
cluster left behind (:mod:`starburst_dask.admin.inventory`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import dask.config
from botocore.exceptions import ClientError
from distributed.security import Security

from ..aws.names import SECRET_PREFIX
from ..ecs.tasks import TAG_CLUSTER, UNREACHABLE, task_id
from ..errors import ConfigurationError
from ..options import ClusterOptions
from . import lifetime, security

logger = logging.getLogger(__name__)

#: What ECS does with the execution role to put a secret in a container's environment.
READ_ACTION = "secretsmanager:GetSecretValue"
#: Secrets Manager's answers when the name is taken (by a secret, or one being deleted).
TAKEN = ("ResourceExistsException", "InvalidRequestException")

#: What closing warns about instead of raising: AWS's refusals, and no answer at all.
_FAILURES: tuple[type[BaseException], ...] = (ClientError, *UNREACHABLE)

#: What the cleanup command is told to do with what a cluster could not remove.
CLEANUP = "`starburst-dask cleanup` removes it once the cluster has no task left"


def secret_name(cluster: str) -> str:
    """The name of ``cluster``'s TLS secret."""
    return f"{SECRET_PREFIX}{cluster}/tls"


def secret_cluster(name: str) -> str | None:
    """The cluster whose TLS secret ``name`` is, or ``None`` if it is not one."""
    if name.startswith(SECRET_PREFIX) and name.endswith("/tls"):
        return name[len(SECRET_PREFIX) : -len("/tls")] or None
    return None


#: Said once by a cluster made with ``security=False``.
INSECURE = (
    "security=False: the cluster's scheduler, workers and dashboard use plain TCP and HTTP; "
    "anyone who can reach their ports can run code on them and read their data. Leave "
    "security on (the default: TLS with the cluster's own certificates) unless the network "
    "is yours alone."
)


class ClusterTls:
    """A cluster's certificates (made now, no AWS call) and the secret that delivers them.

    Parameters
    ----------
    options : ClusterOptions
        The cluster's name, tags and maximum lifetime (the certificates' validity).
    """

    def __init__(self, options: ClusterOptions) -> None:
        self.options = options
        self.certificates = security.make(
            options.name, lifetime.max_lifetime_seconds(options.max_lifetime)
        )
        #: The secret, once created.
        self.secret_arn: str | None = None

    @property
    def security(self) -> Security:
        """The client's ``distributed.Security``: the client's key, in memory only."""
        return self.certificates.security()

    async def deliver(self, aws: Any, execution_role_arn: str) -> dict[str, str]:
        """Create the tasks' secret; the container ``secrets`` that reference it (name ->
        ``valueFrom``, ECS's ``<secret ARN>:<JSON key>::``).

        Raises
        ------
        ConfigurationError
            The name is taken, or the execution role may not read the secret (every task
            would fail to start); the secret is deleted again by the cluster's close.
        """
        await self._create(aws.secrets)
        await self._check_readable(aws.iam, execution_role_arn)
        assert self.secret_arn is not None
        return {name: f"{self.secret_arn}:{key}::" for name, key in security.TASK_SECRETS.items()}

    async def _create(self, secrets_manager: Any) -> None:
        name, cluster = secret_name(self.options.name), self.options.name
        tags = {**self.options.tags, TAG_CLUSTER: cluster}
        try:
            created = await secrets_manager.create_secret(
                Name=name,
                Description=f"TLS certificate and key of the tasks of dask cluster {cluster}; "
                "deleted when it closes",
                SecretString=self.certificates.secret_string(),
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )
        except ClientError as e:
            if e.response["Error"]["Code"] not in TAKEN:
                raise
            raise ConfigurationError(
                f"the secret {name} exists already: a cluster named {cluster!r} runs, or one "
                f"whose client died left it. Pass another name=, or remove it with "
                f"`starburst-dask cleanup --cluster {cluster} --yes` ({e})"
            ) from None
        self.secret_arn = created["ARN"]

    async def _check_readable(self, iam: Any, role_arn: str) -> None:
        """IAM's policy simulator: may the execution role read the secret? (Not checked,
        with a debug line, when the caller may not use the simulator.)"""
        try:
            answer = await iam.simulate_principal_policy(
                PolicySourceArn=role_arn,
                ActionNames=[READ_ACTION],
                ResourceArns=[self.secret_arn],
            )
        except ClientError as e:
            logger.debug("could not check that the execution role reads the secret: %s", e)
            return
        if answer["EvaluationResults"][0]["EvalDecision"] != "allowed":
            raise ConfigurationError(
                f"the execution role {role_arn.rsplit('/', 1)[-1]} may not read the cluster's "
                f"TLS secret ({READ_ACTION} on {self.secret_arn}), so no task could start. "
                "Run `starburst-dask setup` again: it lets the execution role read the "
                f"project's secrets ({SECRET_PREFIX}*); or pass security=False (plain TCP)"
            )

    async def retire(self, ecs: Any, secrets_manager: Any, definition: str | None) -> None:
        """Remove the cluster's task definition revision (deregistered, then deleted) and
        its secret (at once, no recovery window). What AWS refuses or does not answer is
        warned about, not raised: closing goes on."""
        if definition is not None:
            await _remove_definition(ecs, definition)
        if self.secret_arn is not None:
            try:
                await delete_secret(secrets_manager, self.secret_arn)
            except _FAILURES as e:
                logger.warning(
                    "could not delete the secret %s: %s; %s", self.secret_arn, e, CLEANUP
                )
            else:
                self.secret_arn = None


async def delete_secret(secrets_manager: Any, arn: str) -> None:
    """Delete a secret now, with no recovery window (a closed cluster's key is of no use)."""
    await secrets_manager.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


async def _remove_definition(ecs: Any, arn: str) -> None:
    """Deregister a task definition revision, then delete it (DeleteTaskDefinitions takes
    INACTIVE revisions only): warned about, not raised, if AWS refuses or does not answer."""
    try:
        await ecs.deregister_task_definition(taskDefinition=arn)
        answer = await ecs.delete_task_definitions(taskDefinitions=[arn])
    except _FAILURES as e:
        logger.warning("could not remove task definition %s: %s; %s", task_id(arn), e, CLEANUP)
        return
    for failure in answer.get("failures", []):
        logger.warning("could not delete task definition %s: %s", arn, failure.get("reason"))


def dashboard_link(scheduler_info: dict[str, Any], scheduler_address: str) -> str:
    """The scheduler's dashboard by ``distributed.dashboard.link``, over ``https``: the
    scheduler's configuration serves it with TLS, not this process's (which distributed
    reads for the link)."""
    template = dask.config.get("distributed.dashboard.link")
    port = scheduler_info["services"]["dashboard"]
    host = scheduler_address.split("://")[1].rsplit(":", 1)[0]
    return str(template.format(**{**os.environ, "scheme": "https", "host": host, "port": port}))
