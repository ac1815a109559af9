"""IAM as ECS and CodeBuild meet it: roles that exist, trust the service, and have propagated.

IAM is eventually consistent: "changes that you make in IAM (or other AWS services) might
not be immediately visible from other services ... a role that you just created" (IAM
user guide, "Troubleshoot IAM: Changes that I make are not always immediately visible").
ECS (and CodeBuild's CreateProject) answer a role they cannot use yet as they answer one
they can never use, so the local Fargate records when each role was created or its trust
policy last changed, and treats it as unusable for :data:`PROPAGATION_DEFAULT` seconds
after that.

:func:`install` wraps moto's IAM backend to record those times (and to name the ECS
service-linked role and answer its re-creation as AWS does), and moto's CodeBuild
backend to refuse a project whose service role CodeBuild cannot assume; the ECS backend
asks :func:`check_task_role` and :func:`check_service_linked_role`.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import unquote

from moto.codebuild import models as codebuild_models
from moto.codebuild.exceptions import InvalidInputException
from moto.ecs.exceptions import EcsClientException, InvalidParameterException
from moto.iam import models as iam_models
from moto.iam.exceptions import InvalidInput, NotFoundException

from . import simulate
from .evaluation import ALLOWED, evaluate

#: Seconds a new or changed role is not usable by ECS. AWS publishes no figure ("usually
#: a few seconds"; IAM user guide, "Changes that I make are not always immediately
#: visible"); new roles commonly take 5-10 s to be assumable by a service.
PROPAGATION_DEFAULT = 8.0

#: The principal ECS tasks assume roles as ("Amazon ECS task execution IAM role").
ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"
#: ECS's service-linked role ("Using service-linked roles for Amazon ECS"): ECS creates it
#: with the first cluster; until it exists and has propagated, ECS answers as below.
ECS_SERVICE = "ecs.amazonaws.com"
ECS_SERVICE_LINKED_ROLE = "AWSServiceRoleForECS"

#: ClientException on RunTask for a role ECS cannot assume (as AWS words it; reported
#: e.g. in aws/amazon-ecs-cli and terraform-provider-aws issues).
UNABLE_TO_ASSUME = (
    "ECS was unable to assume the role '{arn}' that was provided for this task. Please "
    "verify that the role being passed has the proper trust relationship and permissions "
    "and that your IAM user has permissions to pass this role."
)
#: InvalidParameterException without a usable service-linked role (verbatim in
#: awslabs/fargatecli#35, aws/amazon-ecs-cli#733, aws-samples issues).
SLR_UNUSABLE = (
    "Unable to assume the service linked role. Please verify that the ECS service linked "
    "role exists."
)
#: The principal CodeBuild assumes a project's service role as.
CODEBUILD_PRINCIPAL = "codebuild.amazonaws.com"
#: InvalidInputException on CreateProject for a service role CodeBuild cannot assume:
#: AWS CodeBuild User Guide, "Troubleshooting AWS CodeBuild" ("CodeBuild is not authorized
#: to perform: sts:AssumeRole" when creating or updating a build project).
CODEBUILD_UNABLE_TO_ASSUME = "CodeBuild is not authorized to perform: sts:AssumeRole on {arn}"
#: IAM's answer to CreateServiceLinkedRole when the role exists (InvalidInput).
SLR_TAKEN = (
    "Service role name {name} has been taken in this account, please try a different suffix."
)


class RoleClock:
    """When each role (by account and name) was created or last had its trust changed.

    Parameters
    ----------
    propagation : float
        Seconds after such a change before ECS can use the role.
    """

    def __init__(self, propagation: float = PROPAGATION_DEFAULT) -> None:
        self.propagation = propagation
        self._changed: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def changed(self, account: str, role: str, at: float | None = None) -> None:
        """Record a change of ``role`` now (or at ``at``, a ``time.time()``)."""
        with self._lock:
            self._changed[(account, role)] = time.time() if at is None else at

    def backdate(self, account: str, role: str) -> None:
        """Make ``role`` usable now, as a role set up long ago is."""
        self.changed(account, role, at=0.0)

    def propagated(self, account: str, role: str) -> bool:
        """Whether ECS can use ``role`` now."""
        with self._lock:
            at = self._changed.get((account, role), 0.0)
        return time.time() - at >= self.propagation


_clock: RoleClock | None = None
_originals: dict[str, Any] = {}


def install(clock: RoleClock) -> None:
    """Record role changes in ``clock`` until :func:`uninstall`."""
    global _clock
    _clock = clock
    backend = iam_models.IAMBackend
    _originals.update(
        create_role=backend.create_role,
        update_assume_role_policy=backend.update_assume_role_policy,
        create_service_linked_role=backend.create_service_linked_role,
    )
    backend.create_role = _create_role  # type: ignore[method-assign]
    backend.update_assume_role_policy = _update_trust  # type: ignore[method-assign]
    backend.create_service_linked_role = _create_slr  # type: ignore[method-assign]
    _originals["codebuild_create_project"] = codebuild_models.CodeBuildBackend.create_project
    codebuild_models.CodeBuildBackend.create_project = _create_project  # type: ignore
    # moto would name it "AWSServiceRoleForecs".
    iam_models.SERVICE_NAME_CONVERSION["ecs"] = "ECS"


def uninstall() -> None:
    """Restore moto's IAM backend."""
    global _clock
    codebuild = _originals.pop("codebuild_create_project", None)
    if codebuild is not None:
        codebuild_models.CodeBuildBackend.create_project = codebuild  # type: ignore
    for name, method in _originals.items():
        setattr(iam_models.IAMBackend, name, method)
    _originals.clear()
    iam_models.SERVICE_NAME_CONVERSION.pop("ecs", None)
    _clock = None


def clock() -> RoleClock:
    """The installed :class:`RoleClock`."""
    if _clock is None:
        raise RuntimeError("the local Fargate is not running")
    return _clock


def _create_role(self: Any, role_name: str, *args: Any, **kwargs: Any) -> Any:
    role = _originals["create_role"](self, role_name, *args, **kwargs)
    clock().changed(self.account_id, role_name)
    return role


def _update_trust(self: Any, role_name: str, policy_document: str) -> None:
    _originals["update_assume_role_policy"](self, role_name, policy_document)
    clock().changed(self.account_id, role_name)


def _create_slr(self: Any, service_name: str, description: str, suffix: str) -> Any:
    if service_name == ECS_SERVICE and _role(self, ECS_SERVICE_LINKED_ROLE) is not None:
        raise InvalidInput(SLR_TAKEN.format(name=ECS_SERVICE_LINKED_ROLE))
    return _originals["create_service_linked_role"](self, service_name, description, suffix)


def _create_project(
    self: Any,
    project_name: str,
    description: str | None,
    project_source: dict[str, Any],
    artifacts: dict[str, Any],
    environment: dict[str, Any],
    service_role: str,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """CodeBuild's CreateProject: its service role must trust CodeBuild, and have propagated."""
    backend = iam_backend(self.account_id)
    role = next((r for r in backend.get_roles() if r.arn == service_role), None)
    if (
        role is None
        or not trusts(role, CODEBUILD_PRINCIPAL)
        or not clock().propagated(self.account_id, role.name)
    ):
        raise InvalidInputException(CODEBUILD_UNABLE_TO_ASSUME.format(arn=service_role))
    return _originals["codebuild_create_project"](
        self,
        project_name,
        description,
        project_source,
        artifacts,
        environment,
        service_role,
        *args,
        **kwargs,
    )


def iam_backend(account_id: str) -> Any:
    """moto's IAM backend of an account (IAM is global: one per partition)."""
    return iam_models.iam_backends[account_id]["aws"]


def _role(backend: Any, name: str) -> Any | None:
    return next((r for r in backend.get_roles() if r.name == name), None)


def trusts(role: Any, principal: str) -> bool:
    """Whether ``role``'s trust policy lets the service ``principal`` assume it."""
    document = role.assume_role_policy_document
    if isinstance(document, str):
        document = json.loads(unquote(document))
    for statement in document.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        services = (statement.get("Principal") or {}).get("Service", [])
        services = [services] if isinstance(services, str) else services
        if principal in services and {"sts:AssumeRole", "sts:*", "*"} & set(actions):
            return True
    return False


def check_task_role(account_id: str, arn: str) -> None:
    """ClientException unless ECS tasks can assume the role ``arn`` now."""
    backend = iam_backend(account_id)
    role = next((r for r in backend.get_roles() if r.arn == arn), None)
    if (
        role is None
        or not trusts(role, ECS_TASKS_PRINCIPAL)
        or not clock().propagated(account_id, role.name)
    ):
        raise EcsClientException(UNABLE_TO_ASSUME.format(arn=arn))


def ensure_service_linked_role(account_id: str) -> None:
    """Create ECS's service-linked role if missing, as ECS does with a cluster."""
    backend = iam_backend(account_id)
    if _role(backend, ECS_SERVICE_LINKED_ROLE) is None:
        _originals["create_service_linked_role"](
            backend, ECS_SERVICE, "Role to enable Amazon ECS to manage your cluster.", ""
        )


def check_service_linked_role(account_id: str) -> None:
    """InvalidParameterException unless ECS's service-linked role exists and propagated."""
    role = _role(iam_backend(account_id), ECS_SERVICE_LINKED_ROLE)
    if role is None or not clock().propagated(account_id, role.name):
        raise InvalidParameterException(SLR_UNUSABLE)


def role_allows(arn: str | None, action: str, resource: str) -> bool:
    """Whether the role ``arn``'s own policies allow ``action`` on ``resource`` (IAM's
    evaluation for one identity, as the policy simulator applies it)."""
    if arn is None:
        return False
    try:
        sources = simulate.principal_sources(arn)
    except (InvalidInput, NotFoundException):  # not a role, or no such role
        return False
    return evaluate(sources, action, resource, {}).decision == ALLOWED
