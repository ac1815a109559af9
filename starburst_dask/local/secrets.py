"""A container definition's ``secrets``, resolved as ECS resolves them while a task is PENDING.

Each entry ``{name, valueFrom}`` becomes the environment variable ``name`` of the task's
process, its value read with the task's execution role: from Secrets Manager for a secret's
ARN (``arn:...:secretsmanager:...:secret:<id>``, optionally ``:<json-key>:<version-stage>:
<version-id>``, a JSON key selecting one field of a JSON ``SecretString``), else from
Systems Manager Parameter Store (a parameter's ARN, or its name in the task's region).
The values are read from moto's backends in this process, only the task's process sees
them (never the ECS API's answers nor its command line), and a secret the task cannot read
stops it in AWS's words. Sources of every rule are in ``docs/local-fargate.md``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.iam.exceptions import InvalidInput, NotFoundException
from moto.secretsmanager.models import secretsmanager_backends
from moto.ssm.models import ssm_backends

from . import reach, simulate
from .evaluation import ALLOWED, EXPLICIT_DENY, evaluate

#: The actions the execution role needs ("Pass Secrets Manager secrets through Amazon ECS
#: environment variables", "Pass Systems Manager parameters through Amazon ECS
#: environment variables": IAM permissions).
ASM_ACTION = "secretsmanager:GetSecretValue"
SSM_ACTION = "ssm:GetParameters"
#: How every such failure begins (Fargate's stoppedReason, as AWS reports it).
PREFIX = (
    "ResourceInitializationError: unable to pull secrets or registry auth: execution "
    "resource retrieval failed: "
)
ASM_FAILED = (
    PREFIX + "unable to retrieve secret from asm: service call has been retried 1 time(s): "
)
SSM_FAILED = (
    PREFIX + "unable to retrieve secrets from ssm: service call has been retried 1 time(s): "
)
#: Secrets Manager's answer, as the task's stoppedReason quotes it.
ASM_FETCH = "failed to fetch secret {arn} from secrets manager: {code}: {message}"
#: An authorization failure, as the task's stoppedReason quotes it.
ASM_FETCH_DENIED = "failed to fetch secret {arn} from secrets manager: {denied}"
#: The Go SDK's suffix to a service error.
STATUS = " status code: 400, request id: {request}"
#: A JSON key the secret's JSON lacks (the ECS agent's ``asm.GetSecretFromASMWithInput``).
NO_JSON_KEY = "retrieved secret from Secrets Manager did not contain json key {key}"
#: A secret ARN with a wrong number of fields (the ECS agent's ``getASMParametersFromInput``).
INVALID_ARN = (
    "trying to retrieve secret with value {value} resulted in error: an invalid ARN format "
    "for the AWS Secrets Manager secret was specified. Specify a valid ARN and try again."
)
#: Parameters GetParameters answered as InvalidParameters (missing ones).
SSM_INVALID = "invalid ssm parameters: {names}"
#: IAM's denial of the execution role's session (its session name is the task's id).
DENIED = "AccessDeniedException: " + simulate.NOT_AUTHORIZED
#: Secrets Manager's answer to a secret scheduled for deletion (InvalidRequestException).
MARKED_FOR_DELETION = (
    "You can't perform this operation on the secret because it was marked for deletion."
)
#: Without a path to the service, the task stops after the agent's retries.
ASM_TIMEOUT = (
    PREFIX + "unable to retrieve secret from asm: service call has been retried 5 time(s): "
    "failed to fetch secret {arn} from secrets manager: RequestCanceled: request context "
    "canceled caused by: context deadline exceeded. Please check your task network "
    "configuration."
)
SSM_TIMEOUT = (
    PREFIX + "unable to retrieve secrets from ssm: service call has been retried 5 time(s): "
    "RequestCanceled: request context canceled caused by: context deadline exceeded. "
    "Please check your task network configuration."
)

_ASM_ARN = re.compile(r"arn:(aws[a-z-]*):secretsmanager:([a-z0-9-]*):(\d*):secret:(.*)")
_SSM_ARN = re.compile(r"arn:(aws[a-z-]*):ssm:([a-z0-9-]+):(\d{12}):parameter/?(.+)")


@dataclass(frozen=True)
class Task:
    """What resolving a task's secrets needs to know of the task."""

    account: str
    region: str
    task_id: str
    execution_role: str | None
    egress: reach.Egress


def is_secrets_manager(value_from: str) -> bool:
    """Whether ECS reads ``value_from`` from Secrets Manager (else Parameter Store)."""
    return _ASM_ARN.fullmatch(value_from) is not None


def unreachable(secrets: Sequence[dict[str, str]], task: Task) -> str | None:
    """Why ``task`` cannot reach where its ``secrets`` are (AWS's words), or None."""
    for entry in secrets:
        match = _ASM_ARN.fullmatch(entry["valueFrom"])
        if match and not _reachable(task, match[2], "secretsmanager"):
            arn = entry["valueFrom"].split(":secret:")[0]
            return ASM_TIMEOUT.format(arn=f"{arn}:secret:{match[4].split(':')[0]}")
    for entry in secrets:
        if is_secrets_manager(entry["valueFrom"]):
            continue
        parameter = _SSM_ARN.fullmatch(entry["valueFrom"])
        if not _reachable(task, parameter[2] if parameter else task.region, "ssm"):
            return SSM_TIMEOUT
    return None


def resolve(secrets: Sequence[dict[str, str]], task: Task) -> dict[str, str] | str:
    """The environment ``secrets`` give ``task``'s process, or why the task stops."""
    values: dict[str, str] = {}
    parameters: list[dict[str, str]] = []
    for entry in secrets:
        if not is_secrets_manager(entry["valueFrom"]):
            parameters.append(entry)
            continue
        value = _from_secrets_manager(entry["valueFrom"], task)
        if value.failure is not None:
            return value.failure
        values[entry["name"]] = value.value
    if parameters:
        found = _from_parameter_store([p["valueFrom"] for p in parameters], task)
        if isinstance(found, str):
            return found
        values.update({p["name"]: found[p["valueFrom"]] for p in parameters})
    return values


@dataclass(frozen=True)
class _Read:
    value: str = ""
    failure: str | None = None


def _from_secrets_manager(value_from: str, task: Task) -> _Read:
    match = _ASM_ARN.fullmatch(value_from)
    assert match is not None
    partition, region, account, resource = match.groups()
    fields = resource.split(":")
    if len(fields) not in (1, 4):
        return _Read(failure=ASM_FAILED + INVALID_ARN.format(value=value_from))
    secret_id = f"arn:{partition}:secretsmanager:{region}:{account}:secret:{fields[0]}"
    json_key, stage, version = fields[1:] if len(fields) == 4 else ("", "", "")
    backend = secretsmanager_backends[account][region]
    secret = backend.secrets.get(secret_id)
    resource_arn = secret.arn if secret is not None else secret_id
    denied = _denial(task, ASM_ACTION, resource_arn)
    if denied:
        return _Read(failure=ASM_FAILED + ASM_FETCH_DENIED.format(arn=secret_id, denied=denied))
    try:
        if secret is not None and secret.is_deleted():
            raise JsonRESTError("InvalidRequestException", MARKED_FOR_DELETION)
        # moto's types say str, but it reads None as "not given" (AWSCURRENT).
        answer = backend.get_secret_value(secret_id, version or None, stage or None)  # type: ignore[arg-type]
    except JsonRESTError as error:
        fetch = ASM_FETCH.format(arn=secret_id, code=error.error_type, message=error.message)
        return _Read(failure=ASM_FAILED + fetch + STATUS.format(request=uuid.uuid4()))
    text = answer.get("SecretString") or ""
    if not json_key:
        return _Read(text)
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        first = text.lstrip()[:1]
        return _Read(
            failure=ASM_FAILED + f"invalid character '{first}' looking for beginning of value"
        )
    if not isinstance(document, dict):
        kind = {list: "array", str: "string", bool: "bool"}.get(type(document), "number")
        return _Read(
            failure=ASM_FAILED
            + f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
        )
    if json_key not in document:
        return _Read(failure=ASM_FAILED + NO_JSON_KEY.format(key=json_key))
    return _Read(_go_text(document[json_key]))


def _from_parameter_store(names: list[str], task: Task) -> dict[str, str] | str:
    """GetParameters (with decryption) per region, as the agent batches them."""
    wanted: dict[str, tuple[str, str, str]] = {}  # valueFrom -> account, region, name
    for value_from in names:
        match = _SSM_ARN.fullmatch(value_from)
        if match:
            _, region, account, name = match.groups()
            wanted[value_from] = (account, region, name if "/" not in name else f"/{name}")
        else:
            wanted[value_from] = (task.account, task.region, value_from)
    for account, region, name in wanted.values():
        arn = f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"
        denied = _denial(task, SSM_ACTION, arn)
        if denied:
            return SSM_FAILED + denied
    values: dict[str, str] = {}
    invalid = []
    for value_from, (account, region, name) in wanted.items():
        parameter = ssm_backends[account][region].get_parameters([name]).get(name)
        if parameter is None:
            invalid.append(value_from)
        else:
            values[value_from] = parameter.decrypt(parameter.value) or ""  # WithDecryption
    if invalid:
        return SSM_FAILED + SSM_INVALID.format(names=",".join(invalid))
    return values


def _reachable(task: Task, region: str, service: str) -> bool:
    """The service is reached through the internet, or its VPC endpoint in the task's region."""
    egress = task.egress
    return egress.internet_source is not None or (
        region == task.region and service in egress.endpoints
    )


def _denial(task: Task, action: str, resource: str) -> str | None:
    """IAM's AccessDeniedException text unless the execution role may do ``action``."""
    role = task.execution_role or ""
    try:
        sources = simulate.principal_sources(role)
    except (InvalidInput, NotFoundException):
        sources = []
    decision = evaluate(sources, action, resource, {}).decision
    if decision == ALLOWED:
        return None
    name = role.rsplit("/", 1)[-1]
    caller = f"arn:aws:sts::{task.account}:assumed-role/{name}/{task.task_id}"
    why = simulate.DENIED if decision == EXPLICIT_DENY else simulate.NO_ALLOW.format(action=action)
    text = DENIED.format(caller=caller, action=action, resource=resource, why=why)
    return text + STATUS.format(request=uuid.uuid4())


def _go_text(value: Any) -> str:
    """A JSON value as the agent's ``fmt.Sprintf("%v")`` writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if float(value).is_integer() and abs(value) < 1e21 else repr(value)
    if value is None:
        return "<nil>"
    return json.dumps(value)
