"""Every request checked against AWS's own service model, answered as that service answers.

AWS validates each request server-side against the model botocore ships: required members,
types, ``min``/``max`` (lengths, counts, values), ``pattern`` and ``enum``. botocore's client
checks only some of these, and other SDKs fewer, so :class:`ValidationMiddleware` (WSGI, in
front of moto and the Price List middleware) decodes every signed request by its model
(:mod:`.wire`), checks it (:mod:`.constraints`) and refuses a violation with the error code,
format and wording of the service called (:data:`SERVICE_ERRORS`); moto never sees it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..aws.clients import APP_ID
from . import wire, wsgi
from .constraints import Violation, WrongType, violations

#: In the user agent of the project's own clients (botocore's ``app/<id>``).
PROJECT_AGENT = f"app/{APP_ID}"


@dataclass(frozen=True)
class ServiceErrors:
    """How a service refuses a request that breaks its model.

    Attributes
    ----------
    code : str
        The error code.
    wording : str
        ``coral``: "1 validation error detected: Value 'x' at 'startedBy' failed to satisfy
        constraint: Member must have length less than or equal to 128" (every violation,
        ``; ``-separated). ``ecr``: "Invalid parameter at 'repositoryName' failed to satisfy
        constraint: 'must have length greater than or equal to 2'" (the first). ``ec2``:
        "Value (x) for parameter GroupName is invalid. ..." (the first; a missing member is
        ``MissingParameter``: "The request must contain the parameter GroupName").
    source : str
        Where AWS shows it.
    """

    code: str
    wording: str
    source: str


#: The rules table: per botocore service name, how a model violation is answered.
SERVICE_ERRORS: dict[str, ServiceErrors] = {
    "ecs": ServiceErrors(
        "InvalidParameterException",
        "coral",
        "Amazon ECS API Reference, Common Errors / RunTask Errors: InvalidParameterException "
        "'The specified parameter isn't valid'",
    ),
    "logs": ServiceErrors(
        "InvalidParameterException",
        "coral",
        "CloudWatch Logs API Reference, PutLogEvents Errors; AWS SDK reports of "
        '"InvalidParameterException: 1 validation error detected: Value null at '
        "'logEvents.1.member.timestamp' ...\"",
    ),
    "ecr": ServiceErrors(
        "InvalidParameterException",
        "ecr",
        'Amazon ECR API Reference, CreateRepository Errors; SDK reports of "Invalid '
        "parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular "
        "expression ...'\"",
    ),
    "iam": ServiceErrors(
        "ValidationError",
        "coral",
        'IAM API Reference, Common Errors: ValidationError; SDK reports of "1 validation '
        "error detected: Value '...' at 'roleName' failed to satisfy constraint: Member must "
        'have length less than or equal to 64"',
    ),
    "sts": ServiceErrors(
        "ValidationError", "coral", "AWS STS API Reference, Common Errors: ValidationError"
    ),
    "ec2": ServiceErrors(
        "InvalidParameterValue",
        "ec2",
        "Amazon EC2 API Reference, Error codes: InvalidParameterValue, MissingParameter",
    ),
    "cloudwatch": ServiceErrors(
        "ValidationError",
        "coral",
        "CloudWatch API Reference, Common Errors: ValidationError (query-compatible code)",
    ),
    "codebuild": ServiceErrors(
        "InvalidInputException",
        "coral",
        "AWS CodeBuild API Reference, Common Errors / InvalidInputException",
    ),
    "pricing": ServiceErrors(
        "InvalidParameterException",
        "coral",
        "AWS Price List API Reference, GetProducts Errors: InvalidParameterException",
    ),
    "s3": ServiceErrors(
        "InvalidArgument", "coral", "Amazon S3 API Reference, Error responses: InvalidArgument"
    ),
}
#: Any other service (Service Quotas among them): AWS's common ValidationException.
DEFAULT_ERRORS = ServiceErrors(
    "ValidationException",
    "coral",
    "AWS API Reference, Common Errors: ValidationException 'The input fails to satisfy the "
    "constraints specified by an AWS service', HTTP 400",
)
_TYPE_ERROR = "SerializationException"  # JSON protocols: a value of the wrong type


class ValidationMiddleware:
    """WSGI middleware refusing requests that break their service's model.

    Parameters
    ----------
    app : callable
        The WSGI app valid requests go to (moto's dispatcher, or middleware in front of it).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        #: ``(service, operation)`` of each request the project's own clients sent (their
        #: user agent carries ``app/starburst-dask``), valid or not.
        self.project_calls: Counter[tuple[str, str]] = Counter()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        body = wire.read_body(environ)
        try:
            request = wire.decode(environ, body)
        except ValueError:
            request = None  # not JSON: the service's own parser answers
        if request is None:
            return self.app(environ, start_response)
        if PROJECT_AGENT in environ.get("HTTP_USER_AGENT", ""):
            self.project_calls[request.service, request.operation.name] += 1
        refusal = check(request)
        if refusal is None:
            return self.app(environ, start_response)
        code, message = refusal
        return wsgi.error_answer(request, code, message, start_response)


def install(server: Any) -> ValidationMiddleware:
    """Check every request to a running ``moto.server.ThreadedMotoServer`` (outermost)."""
    wsgi = server._server  # the werkzeug server; its ``app`` is moto's dispatcher
    if not isinstance(wsgi.app, ValidationMiddleware):
        wsgi.app = ValidationMiddleware(wsgi.app)
    return wsgi.app


def check(request: wire.Request) -> tuple[str, str] | None:
    """The error code and message AWS answers ``request`` with, or ``None`` if it is valid."""
    shape = request.operation.input_shape
    if shape is None:
        return None
    errors = SERVICE_ERRORS.get(request.service, DEFAULT_ERRORS)
    ec2 = request.protocol == "ec2"
    try:
        found = violations(shape, request.params, wire_names=ec2, unchecked=request.unchecked)
    except WrongType as wrong:
        return _type_error(request, errors, wrong)
    if not found:
        return None
    if errors.wording == "ec2":
        first = found[0]
        if first.kind == "required":
            return "MissingParameter", f"The request must contain the parameter {first.wire}"
        return errors.code, (
            f"Value ({_java(first.value)}) for parameter {first.wire} is "
            f"invalid. {first.constraint}"
        )
    if errors.wording == "ecr":
        first = found[0]
        constraint = first.constraint.removeprefix("Member ")
        constraint = constraint.replace("regular expression pattern: ", "regular expression '")
        if first.kind == "pattern":
            constraint += "'"
        return errors.code, (
            f"Invalid parameter at '{_path(first)}' failed to satisfy constraint: '{constraint}'"
        )
    return errors.code, coral_message(found)


def coral_message(found: list[Violation]) -> str:
    """AWS's common wording for model violations, every one listed."""
    n = len(found)
    details = "; ".join(
        f"Value {_value(v.value)} at '{_path(v)}' failed to satisfy constraint: {v.constraint}"
        for v in found
    )
    return f"{n} validation error{'s' if n > 1 else ''} detected: {details}"


def _type_error(request: wire.Request, errors: ServiceErrors, wrong: WrongType) -> tuple[str, str]:
    path = _path(Violation(wrong.path, wrong.wire, wrong.value, "", "type"))
    if request.protocol in ("json", "rest-json"):
        return _TYPE_ERROR, f"Value {_value(wrong.value)} at '{path}' is not a {wrong.type_name}"
    name = wrong.wire if request.protocol == "ec2" else path
    return errors.code, f"Value ({_java(wrong.value)}) for parameter {name} is invalid."


def _path(violation: Violation) -> str:
    """The member's path as AWS writes it: ``overrides.containerOverrides.1.member.name``."""
    parts = []
    for step in violation.path:
        parts.append(f"{step}.member" if isinstance(step, int) else step[:1].lower() + step[1:])
    return ".".join(parts)


def _value(value: Any) -> str:
    return "null" if value is None else f"'{_java(value)}'"


def _java(value: Any) -> str:
    """``value`` as Java's ``toString`` writes it (AWS's services are Java)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_java(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_java(k)}={_java(v)}" for k, v in value.items()) + "}"
    return "null" if value is None else str(value)
