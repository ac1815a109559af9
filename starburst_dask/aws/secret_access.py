"""Before any task starts: the user's ``secrets=`` exist and the execution role may read them.

ECS reads a container's ``secrets`` with the task's execution role when each task starts
("Pass Secrets Manager secrets through Amazon ECS environment variables", "Pass Systems
Manager parameters through Amazon ECS environment variables"): a secret that does not
exist, or that the role may not read, fails every task. So preflight asks the services
whether each one exists (``DescribeSecret``, ``DescribeParameters``: no value is read), and
IAM's policy simulator whether the role may read it (``secretsmanager:GetSecretValue`` on
the secret, ``ssm:GetParameters`` on the parameter), and refuses with the fix.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from .. import sensitive
from ..errors import ConfigurationError, MissingResourceError
from . import lookups
from .clients import AwsClients, aio_client_config
from .names import role_name

logger = logging.getLogger("starburst_dask")

SECRET_ACTION = "secretsmanager:GetSecretValue"
PARAMETER_ACTION = "ssm:GetParameters"


@dataclass(frozen=True)
class Reference:
    """One ``secrets=`` entry: its variable, where it lives, and what IAM authorizes."""

    name: str
    value_from: str
    region: str
    #: The id the service is asked about: the secret's ARN, or the parameter's name.
    service_id: str
    #: The action the execution role needs, and the resource it needs it on.
    action: str
    resource: str


def references(secrets: dict[str, str], region: str, account: str) -> list[Reference]:
    """The user's ``secrets`` as :class:`Reference`, in the cluster's ``region`` and account."""
    found = []
    for name, value_from in sorted(secrets.items()):
        secret = sensitive.SECRET_REFERENCE.fullmatch(value_from)
        if secret:
            arn = value_from[: secret.end("name")]  # without :json-key:stage:version
            where = arn.split(":")[3]
            found.append(Reference(name, value_from, where, arn, SECRET_ACTION, arn))
            continue
        parameter = sensitive.PARAMETER_ARN.fullmatch(value_from)
        if parameter:
            where, owner, path = parameter["region"], parameter["account"], parameter["name"]
        else:
            where, owner, path = region, account, value_from
        path = path.lstrip("/")
        resource = f"arn:aws:ssm:{where}:{owner}:parameter/{path}"
        service_id = f"/{path}" if "/" in path else path
        found.append(Reference(name, value_from, where, service_id, PARAMETER_ACTION, resource))
    return found


def services(secrets: dict[str, str]) -> tuple[str, ...]:
    """The services (VPC endpoint names) the tasks read ``secrets`` from."""
    values = secrets.values()
    return tuple(
        service
        for service, used in (
            ("secretsmanager", any(sensitive.is_secret(v) for v in values)),
            ("ssm", any(not sensitive.is_secret(v) for v in values)),
        )
        if used
    )


async def check(aws: AwsClients, secrets: dict[str, str], execution_role_arn: str) -> None:
    """Refuse the user's ``secrets`` unless each exists and the execution role may read it.

    Raises
    ------
    MissingResourceError
        A secret or parameter that does not exist, named with how to create it.
    ConfigurationError
        One the execution role may not read, with the policy statement to add.
    """
    if not secrets:
        return
    account = execution_role_arn.split(":")[4]
    wanted = references(secrets, aws.region, account)
    async with _clients({r.region for r in wanted}) as clients:
        for reference in wanted:
            await _exists(clients, reference)
    for reference in wanted:
        await _readable(aws, reference, execution_role_arn)


@contextlib.asynccontextmanager
async def _clients(regions: set[str]) -> AsyncIterator[dict[tuple[str, str], Any]]:
    """Secrets Manager and Systems Manager clients of each region a reference is in."""
    session = get_session()
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for region in sorted(regions):
            for service in ("secretsmanager", "ssm"):
                client = session.create_client(
                    service, region_name=region, config=aio_client_config()
                )
                clients[(service, region)] = await stack.enter_async_context(client)
        yield clients


async def _exists(clients: dict[tuple[str, str], Any], reference: Reference) -> None:
    if reference.action == SECRET_ACTION:
        client = clients[("secretsmanager", reference.region)]
        try:
            await client.describe_secret(SecretId=reference.service_id)
        except ClientError as e:
            if lookups.error_code(e) == "ResourceNotFoundException":
                raise MissingResourceError(
                    f"secrets: {reference.name}: Secrets Manager has no secret "
                    f"{reference.service_id} in {reference.region}; create it (aws "
                    "secretsmanager create-secret --name <name> --secret-string ...) and "
                    "pass its ARN, or correct the ARN"
                ) from None
            _cannot_check(reference, e)
        return
    client = clients[("ssm", reference.region)]
    try:
        answer = await client.describe_parameters(
            ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [reference.service_id]}]
        )
    except ClientError as e:
        _cannot_check(reference, e)
        return
    if not answer.get("Parameters"):
        raise MissingResourceError(
            f"secrets: {reference.name}: Systems Manager has no parameter "
            f"{reference.service_id} in {reference.region}; create it (aws ssm put-parameter "
            f"--name {reference.service_id} --type SecureString --value ...) or correct the "
            "name"
        )


async def _readable(aws: AwsClients, reference: Reference, role_arn: str) -> None:
    try:
        answer = await aws.iam.simulate_principal_policy(
            PolicySourceArn=role_arn,
            ActionNames=[reference.action],
            ResourceArns=[reference.resource],
        )
    except ClientError as e:
        _cannot_check(reference, e)
        return
    [result] = answer["EvaluationResults"]
    if result["EvalDecision"] == "allowed":
        return
    statement = {"Effect": "Allow", "Action": reference.action, "Resource": reference.resource}
    why = (
        "a policy denies it" if result["EvalDecision"] == "explicitDeny" else "no policy allows it"
    )
    raise ConfigurationError(
        f"secrets: the execution role {role_name(role_arn)} may not read {reference.name} "
        f"({reference.action} on {reference.resource}: {why}), so every task would fail to "
        f"start. Add this statement to the role's policies: {json.dumps(statement)} (e.g. aws "
        f"iam put-role-policy --role-name {role_name(role_arn)} --policy-name "
        "starburst-dask-user-secrets --policy-document ...), or pass another execution_role="
    )


def _cannot_check(reference: Reference, error: ClientError) -> None:
    """Say once that a check could not be made (tasks fail in AWS's words if it fails)."""
    logger.warning(
        "could not check secrets entry %s (%s): %s; if the execution role cannot read it, "
        "every task will fail to start",
        reference.name,
        reference.value_from,
        lookups.error_code(error),
    )
