"""IAM's policy simulator, which moto lacks: ``SimulatePrincipalPolicy``; and the root caller.

The simulator evaluates the identity-based policies of a user (with its groups'), group
or role (:mod:`.evaluation`), with the request's ``ContextEntries`` as the condition
context. Permissions boundaries, SCPs and resource-based policies are not simulated.

The caller needs ``iam:SimulatePrincipalPolicy`` on the principal's ARN itself: an IAM
user's or assumed role's request is authorized by the same evaluation, and answered with
IAM's ``AccessDenied`` when its policies do not allow it. moto authorizes no other call.

moto answers ``GetCallerIdentity`` for credentials it did not issue with a made-up
``sts::...:user/moto``; the local Fargate's own credentials act as the account's root
user (every call allowed), so :func:`install` answers for them as AWS does for root.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from moto.core.exceptions import _RESTError
from moto.core.responses import ActionResult
from moto.iam.exceptions import InvalidInput, NotFoundException
from moto.iam.models import Group, Role, User, iam_backends
from moto.iam.responses import IamResponse
from moto.sts.models import STSBackend, sts_backends

from .evaluation import ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY, Source, evaluate

#: Results a page holds when the request has no ``MaxItems`` (API reference).
MAX_ITEMS_DEFAULT = 100
#: The action the caller needs on the simulated principal.
SIMULATE_ACTION = "iam:SimulatePrincipalPolicy"
#: IAM's answers (API reference, SimulatePrincipalPolicy errors; wording of IAM's
#: NoSuchEntity for each kind, and its InvalidInput for a non-principal ARN).
NO_SUCH_ENTITY = "The {kind} with name {name} cannot be found."
INVALID_ARN = "Invalid Entity Arn: {arn}"
INVALID_MARKER = "Invalid Marker: {marker}"
#: "Access denied error messages" (IAM user guide), for an identity-based policy.
NOT_AUTHORIZED = (
    "User: {caller} is not authorized to perform: {action} on resource: {resource} because {why}"
)
NO_ALLOW = "no identity-based policy allows the {action} action"
DENIED = "with an explicit deny in an identity-based policy"

_PRINCIPAL = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):(user|group|role)/(?:[^/]+/)*([^/]+)")


class AccessDenied(_RESTError):
    """IAM's AccessDenied (HTTP 403)."""

    code = 403

    def __init__(self, message: str) -> None:
        super().__init__("AccessDenied", message)


_originals: dict[str, Any] = {}


def install() -> None:
    """Serve ``SimulatePrincipalPolicy``; answer the root caller as AWS does."""
    _originals.update(get_caller_identity=STSBackend.get_caller_identity)
    IamResponse.simulate_principal_policy = _simulate_principal_policy  # type: ignore[attr-defined]
    STSBackend.get_caller_identity = _get_caller_identity  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore moto's IAM responses (which have no simulator) and STS backend."""
    if "get_caller_identity" in _originals:
        del IamResponse.simulate_principal_policy  # type: ignore[attr-defined]
        STSBackend.get_caller_identity = _originals.pop("get_caller_identity")  # type: ignore[method-assign]


def _get_caller_identity(self: Any, access_key_id: str, region: str) -> tuple[str, str, str]:
    user_id, arn, account = _originals["get_caller_identity"](self, access_key_id, region)
    if arn.endswith(f":sts::{account}:user/moto"):  # not a user or role moto issued keys to
        return account, f"arn:{arn.split(':')[1]}:iam::{account}:root", account
    return user_id, arn, account


def principal_sources(arn: str) -> list[Source]:
    """The identity-based policies of the user (and its groups), group or role ``arn``.

    Raises
    ------
    InvalidInput
        ``arn`` is not the ARN of a user, group or role.
    NotFoundException
        No such principal (IAM's ``NoSuchEntity``).
    """
    match = _PRINCIPAL.fullmatch(arn)
    if match is None:
        raise InvalidInput(INVALID_ARN.format(arn=arn))
    partition, account, kind, name = match.groups()
    backend = iam_backends[account][partition]
    by_kind: dict[str, dict[str, User] | dict[str, Group] | dict[str, Role]] = {
        "user": backend.users,
        "group": backend.groups,
        "role": backend.roles,
    }
    entities = by_kind[kind]
    entity = next((e for e in entities.values() if e.arn == arn), None)
    if entity is None:
        raise NotFoundException(NO_SUCH_ENTITY.format(kind=kind, name=name))
    sources = list(_own_sources(entity, kind))
    if kind == "user":
        for group in backend.get_groups_for_user(entity.name):
            sources += _own_sources(group, "group")
    return sources


def _own_sources(entity: Any, kind: str) -> Iterator[Source]:
    for name, text in entity.policies.items():
        yield Source(name, kind, text)
    for policy in entity.managed_policies.values():
        version = next(v for v in policy.versions if v.is_default)
        managed = "aws-managed" if ":iam::aws:policy/" in policy.arn else "user-managed"
        yield Source(policy.name, managed, version.document)


def _caller_sources(response: Any) -> tuple[str, list[Source]] | None:
    """The ARN and policies of the IAM user or assumed role that signed the request;
    None for the account's root user (the local Fargate's own credentials)."""
    key, account, partition = response.access_key, response.current_account, response.partition
    user = iam_backends[account][partition].get_user_from_access_key_id(key)
    if user is not None:
        return user.arn, principal_sources(user.arn)
    session = sts_backends[account][partition].get_assumed_role_from_access_key(key)
    if session is not None:  # its role's ARN, with the role's path
        return session.arn, principal_sources(session.role_arn)
    return None


def _authorize(response: Any, resource: str) -> None:
    """AccessDenied unless the caller may simulate ``resource``'s policies."""
    caller = _caller_sources(response)
    if caller is None:
        return
    arn, sources = caller
    decision = evaluate(sources, SIMULATE_ACTION, resource, {}).decision
    if decision != ALLOWED:
        why = DENIED if decision == EXPLICIT_DENY else NO_ALLOW.format(action=SIMULATE_ACTION)
        raise AccessDenied(
            NOT_AUTHORIZED.format(caller=arn, action=SIMULATE_ACTION, resource=resource, why=why)
        )


def _simulate_principal_policy(self: Any) -> ActionResult:
    """IAM ``SimulatePrincipalPolicy`` (see the module docstring)."""
    arn = self._get_param("PolicySourceArn")
    sources = principal_sources(arn)
    _authorize(self, arn)
    resources = self._get_param("ResourceArns") or ["*"]
    context = {
        entry["ContextKeyName"].lower(): list(entry.get("ContextKeyValues", []))
        for entry in self._get_param("ContextEntries") or []
    }
    results = [
        _result(sources, action, resources, context) for action in self._get_param("ActionNames")
    ]
    marker = self._get_param("Marker")
    start = 0
    if marker is not None:
        if not marker.isdigit() or int(marker) > len(results):
            raise InvalidInput(INVALID_MARKER.format(marker=marker))
        start = int(marker)
    end = start + int(self._get_param("MaxItems") or MAX_ITEMS_DEFAULT)
    page: dict[str, Any] = {
        "EvaluationResults": results[start:end],
        "IsTruncated": end < len(results),
    }
    if end < len(results):
        page["Marker"] = str(end)
    return ActionResult(page)


def _result(
    sources: list[Source], action: str, resources: list[str], context: dict[str, list[str]]
) -> dict[str, Any]:
    """One EvaluationResult: per action, the most restrictive decision over the resources
    (and each resource's own when a list was given)."""
    decisions = [evaluate(sources, action, r, context) for r in resources]
    rank = (EXPLICIT_DENY, IMPLICIT_DENY, ALLOWED)
    worst = min(decisions, key=lambda d: rank.index(d.decision))
    result: dict[str, Any] = {
        "EvalActionName": action,
        "EvalResourceName": resources[0],
        "EvalDecision": worst.decision,
        "MatchedStatements": worst.matched,
        "MissingContextValues": worst.missing,
    }
    if resources != ["*"]:
        result["MissingContextValues"] = []
        result["ResourceSpecificResults"] = [
            {
                "EvalResourceName": r,
                "EvalResourceDecision": d.decision,
                "MatchedStatements": d.matched,
                "MissingContextValues": d.missing,
            }
            for r, d in zip(resources, decisions, strict=True)
        ]
    return result
