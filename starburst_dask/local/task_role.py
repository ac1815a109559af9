"""A task's IAM role, as the task's own code meets it.

ECS gives the containers of a task with a ``taskRoleArn`` temporary credentials of that
role, served at ``169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``, where the AWS
SDKs look for them; a task without one has no credentials at all. Local tasks get the
role's credentials from the metadata server, at ``$AWS_CONTAINER_CREDENTIALS_FULL_URI``
(a loopback URL: the SDKs read it the same way), and none of the local Fargate's own
(:data:`HOST_CREDENTIALS` are kept out of their environment). Every request signed with
such credentials passes :class:`TaskRoleMiddleware`: IAM's evaluation of the role's
identity-based policies (``evaluation.py``) for the operation's action and resource,
else the service's AccessDenied error in IAM's words. See ``docs/local-fargate.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials
from moto.core.utils import iso_8601_datetime_with_milliseconds
from moto.iam.exceptions import NotFoundException
from moto.sts.models import sts_backends

from ..admin.policy import iam_action
from . import simulate, wire, wsgi
from .evaluation import ALLOWED, EXPLICIT_DENY, evaluate
from .simulate import InvalidInput

#: The local Fargate's own credentials and where SDKs would find the host's: no task has
#: them (a container has neither the host's variables nor its files).
HOST_CREDENTIALS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
)
#: Where the SDKs read a task's credentials (the full-URI form, for a loopback server).
CREDENTIALS_VAR = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
#: How long ECS's task credentials last before it rotates them (about six hours).
DURATION = 6 * 3600
#: Operations that need no permission ("GetCallerIdentity": "No permissions are required").
UNAUTHORIZED = frozenset({("sts", "GetCallerIdentity")})
#: AccessDenied by protocol: the error code and HTTP status (each service's Common Errors).
ACCESS_DENIED = {
    "json": ("AccessDeniedException", 400),
    "rest-json": ("AccessDeniedException", 403),
    "query": ("AccessDenied", 403),
    "ec2": ("UnauthorizedOperation", 403),
    "rest-xml": ("AccessDenied", 403),
}
#: A signature that does not match, by protocol (each service's Common Errors).
BAD_SIGNATURE = {"json": "InvalidSignatureException", "rest-json": "InvalidSignatureException"}
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)
_KEY = re.compile(r"Credential=([^/]+)/")
_SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})"
)


@dataclass(frozen=True)
class TaskCredentials:
    """One task's role credentials, as the credentials endpoint serves them."""

    task_id: str
    role_arn: str
    caller: str  #: the assumed role session's ARN, as IAM names the caller
    document: dict[str, str]


class TaskRoles:
    """The task credentials the local Fargate issued: by endpoint id and by access key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, TaskCredentials] = {}
        self._by_key: dict[str, TaskCredentials] = {}

    def issue(self, account: str, region: str, role_arn: str, task_id: str) -> str:
        """Credentials of ``role_arn`` for the task ``task_id``: their endpoint id."""
        partition = "aws-cn" if region.startswith("cn-") else "aws"
        session = sts_backends[account][partition].assume_role(
            region_name=region,
            role_session_name=task_id,
            role_arn=role_arn,
            policy="",
            duration=DURATION,
            external_id="",
        )
        document = {
            "RoleArn": role_arn,
            "AccessKeyId": session.access_key_id,
            "SecretAccessKey": session.secret_access_key,
            "Token": session.session_token,
            "Expiration": iso_8601_datetime_with_milliseconds(session.expiration),
        }
        issued = TaskCredentials(task_id, role_arn, session.arn, document)
        endpoint_id = str(uuid.uuid4())
        with self._lock:
            self._by_id[endpoint_id] = issued
            self._by_key[session.access_key_id] = issued
        return endpoint_id

    def document(self, endpoint_id: str) -> dict[str, str] | None:
        """What the credentials endpoint answers for ``endpoint_id``."""
        with self._lock:
            issued = self._by_id.get(endpoint_id)
        return issued.document if issued is not None else None

    def signer(self, environ: dict[str, Any]) -> TaskCredentials | None:
        """The task credentials a request is signed with, if it is."""
        found = _KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
        with self._lock:
            return self._by_key.get(found.group(1)) if found else None


class TaskRoleMiddleware:
    """WSGI middleware: a request signed with task credentials goes on only if the task
    role's policies allow its action on its resource.

    Parameters
    ----------
    app : callable
        The WSGI app allowed requests go to.
    roles : TaskRoles
        The credentials issued to tasks.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], roles: TaskRoles) -> None:
        self.app = app
        self.roles = roles

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        signer = self.roles.signer(environ)
        if signer is None:
            return self.app(environ, start_response)
        try:
            request = wire.decode(environ, wire.read_body(environ))
        except ValueError:
            request = None
        if request is None:
            return self.app(environ, start_response)
        if not signature_matches(environ, signer.document):
            code = BAD_SIGNATURE.get(request.protocol, "SignatureDoesNotMatch")
            return wsgi.error_answer(request, code, SIGNATURE_MISMATCH, start_response, 403)
        if (request.service, request.operation.name) in UNAUTHORIZED:
            return self.app(environ, start_response)
        region = wsgi.signed_region(environ) or "us-east-1"
        action, resources = access(request, signer.caller.split(":")[4], region)
        denial = next(filter(None, (_denial(signer, action, r) for r in resources)), None)
        if denial is None:
            return self.app(environ, start_response)
        code, status = ACCESS_DENIED[request.protocol]
        return wsgi.error_answer(request, code, denial, start_response, status)


def signature_matches(environ: dict[str, Any], credentials: dict[str, str]) -> bool:
    """Whether a request's SigV4 signature is the one its credentials make (botocore's
    signer over the headers the request says it signed)."""
    found = _SIGV4.fullmatch(environ.get("HTTP_AUTHORIZATION", ""))
    if found is None:
        return False
    region, service, names, signature = found.groups()
    headers = {}
    for name in names.split(";"):
        key = name.upper().replace("-", "_")
        headers[name] = environ.get(f"HTTP_{key}", environ.get(key, ""))
    raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"]
    url = f"http://{environ.get('HTTP_HOST', '')}{raw_path}"
    body = environ["wsgi.input"].getvalue() if wire.needs_body(environ) else b""
    request = AWSRequest(environ["REQUEST_METHOD"], url, headers=headers, data=body)
    request.context["timestamp"] = headers.get("x-amz-date", "")
    signer = _Verifier(
        Credentials(credentials["AccessKeyId"], credentials["SecretAccessKey"]),
        service,
        region,
    )
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    return hmac.compare_digest(expected, signature)


class _Verifier(SigV4Auth):
    """botocore's SigV4 over exactly the headers the request signed, and its whole body."""

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return request.headers

    def payload(self, request: AWSRequest) -> str:
        body = request.body or b""
        return hashlib.sha256(body.encode() if isinstance(body, str) else body).hexdigest()


def install(server: Any, roles: TaskRoles) -> None:
    """Authorize task-signed requests to a running ``moto.server.ThreadedMotoServer``."""
    wsgi_server = server._server  # the werkzeug server; its ``app`` is the middleware chain
    wsgi_server.app = TaskRoleMiddleware(wsgi_server.app, roles)


def access(request: wire.Request, account: str, region: str) -> tuple[str, list[str]]:
    """The IAM action a request needs, and the resources it acts on (``*`` where this
    table does not know them: then only statements for every resource allow it)."""
    name, params = request.operation.name, request.params or {}
    action = iam_action(request.service, name)
    if request.service == "s3":
        bucket, key = params.get("Bucket"), params.get("Key")
        resource = f"arn:aws:s3:::{bucket}/{key}" if key else f"arn:aws:s3:::{bucket}"
        return action, [resource if bucket else "*"]
    if (request.service, name) == ("ecs", "DescribeTasks"):  # each task (its cluster's)
        cluster = params.get("cluster", "default").rsplit("/", 1)[-1]
        tasks = [t.rsplit("/", 1)[-1] for t in params.get("tasks", [])]
        return action, [f"arn:aws:ecs:{region}:{account}:task/{cluster}/{t}" for t in tasks]
    return action, ["*"]


def _denial(signer: TaskCredentials, action: str, resource: str) -> str | None:
    """IAM's AccessDenied text unless the task role allows ``action`` on ``resource``."""
    try:
        sources = simulate.principal_sources(signer.role_arn)
    except (InvalidInput, NotFoundException):  # the role was deleted since
        sources = []
    decision = evaluate(sources, action, resource, {}).decision
    if decision == ALLOWED:
        return None
    why = simulate.DENIED if decision == EXPLICIT_DENY else simulate.NO_ALLOW.format(action=action)
    return simulate.NOT_AUTHORIZED.format(
        caller=signer.caller, action=action, resource=resource, why=why
    )
