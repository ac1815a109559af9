"""IAM's policy simulator, which moto lacks: ``SimulatePrincipalPolicy``; and the root caller.

The simulator evaluates the identity-based policies of a user (with its groups'), group
or role as IAM does ("Policy evaluation logic", IAM user guide): a matching ``Deny``
wins, else a matching ``Allow`` allows, else the action is implicitly denied. Statements
match on ``Action``/``NotAction`` (wildcards ``*`` and ``?``, case-insensitive),
``Resource``/``NotResource`` (wildcards, case-sensitive) and ``Condition``, evaluated for
the operators in :data:`CONDITION_OPERATORS` from the request's ``ContextEntries``; a
condition whose key has no value, or whose operator is not among those, does not match.
Permissions boundaries, SCPs and resource-based policies are not simulated.

The caller needs ``iam:SimulatePrincipalPolicy`` on the principal's ARN itself: an IAM
user's or assumed role's request is authorized by the same evaluation, and answered with
IAM's ``AccessDenied`` when its policies do not allow it. moto authorizes no other call.

moto answers ``GetCallerIdentity`` for credentials it did not issue with a made-up
``sts::...:user/moto``; the local Fargate's own credentials act as the account's root
user (every call allowed), so :func:`install` answers for them as AWS does for root.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from moto.core.exceptions import _RESTError
from moto.core.responses import ActionResult
from moto.iam.exceptions import InvalidInput, NotFoundException
from moto.iam.models import iam_backends
from moto.iam.responses import IamResponse
from moto.sts.models import STSBackend, sts_backends

ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY = "allowed", "explicitDeny", "implicitDeny"
#: Results a page holds when the request has no ``MaxItems`` (API reference).
MAX_ITEMS_DEFAULT = 100
#: The condition operators evaluated; others never match (see the module docstring).
CONDITION_OPERATORS = ("StringEquals", "StringNotEquals", "StringLike", "StringNotLike")
#: The action the caller needs on the simulated principal.
SIMULATE_ACTION = "iam:SimulatePrincipalPolicy"
#: IAM's answers (API reference, SimulatePrincipalPolicy errors; wording of IAM's
#: NoSuchEntity for each kind, and its InvalidInput for a non-principal ARN).
NO_SUCH_ENTITY = "The {kind} with name {name} cannot be found."
INVALID_ARN = "Invalid Entity Arn: {arn}"
INVALID_MARKER = "Invalid Marker: {marker}"
#: "Access denied error messages" (IAM user guide), for an identity-based policy.
NOT_AUTHORIZED = ("User: {caller} is not authorized to perform: {action} on resource: "
                  "{resource} because {why}")
NO_ALLOW = "no identity-based policy allows the {action} action"
DENIED = "with an explicit deny in an identity-based policy"

_PRINCIPAL = re.compile(r"arn:(aws[a-z-]*):iam::(\d{12}):(user|group|role)/(?:[^/]+/)*([^/]+)")


@dataclass
class Source:
    """One policy of the principal: its id and type as IAM reports them, its text."""

    id: str
    type: str  # user | group | role | user-managed | aws-managed
    text: str
    document: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.document = json.loads(self.text)

    def statements(self) -> list[dict[str, Any]]:
        found = self.document.get("Statement", [])
        return found if isinstance(found, list) else [found]


@dataclass
class Decision:
    """The evaluation of one action on one resource."""

    decision: str
    matched: list[dict[str, Any]]
    missing: list[str]


class AccessDenied(_RESTError):
    """IAM's AccessDenied (HTTP 403)."""

    code = 403

    def __init__(self, message: str) -> None:
        super().__init__("AccessDenied", message)


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


_originals: dict[str, Any] = {}


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
    entities = {"user": backend.users, "group": backend.groups, "role": backend.roles}[kind]
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


def evaluate(sources: list[Source], action: str, resource: str,
             context: dict[str, list[str]]) -> Decision:
    """IAM's decision on ``action`` and ``resource`` under ``sources``.

    ``context`` maps condition keys (lower case) to their values.
    """
    allows, denies, missing = [], [], []
    for source in sources:
        for index, statement in enumerate(source.statements()):
            if not (_matches_action(statement, action)
                    and _matches_resource(statement, resource)):
                continue
            satisfied, absent = _conditions(statement.get("Condition") or {}, context)
            missing += [key for key in absent if key not in missing]
            if satisfied:
                found = denies if statement.get("Effect") == "Deny" else allows
                found.append(_matched(source, index))
    if denies:
        return Decision(EXPLICIT_DENY, denies, missing)
    return Decision(ALLOWED if allows else IMPLICIT_DENY, allows, missing)


def _values(statement: dict[str, Any], key: str) -> list[str]:
    value = statement[key]
    return [value] if isinstance(value, str) else list(value)


@lru_cache(maxsize=1024)
def _pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """An IAM wildcard pattern (``*`` any characters, ``?`` one) as a regex."""
    escaped = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(escaped, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _any_match(patterns: list[str], value: str, ignore_case: bool) -> bool:
    return any(_pattern(p, ignore_case).fullmatch(value) for p in patterns)


def _matches_action(statement: dict[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        return not _any_match(_values(statement, "NotAction"), action, True)
    return "Action" in statement and _any_match(_values(statement, "Action"), action, True)


def _matches_resource(statement: dict[str, Any], resource: str) -> bool:
    if "NotResource" in statement:
        return not _any_match(_values(statement, "NotResource"), resource, False)
    return "Resource" in statement and _any_match(_values(statement, "Resource"), resource,
                                                  False)


def _conditions(block: dict[str, Any], context: dict[str, list[str]]) -> tuple[bool, list[str]]:
    """Whether every condition holds, and the condition keys ``context`` lacks."""
    satisfied, missing = True, []
    for operator, tests in block.items():
        for key, expected in tests.items():
            actual = context.get(key.lower())
            if actual is None:
                missing.append(key)
                satisfied = False
                continue
            expected = [expected] if isinstance(expected, str) else list(expected)
            if operator not in CONDITION_OPERATORS:
                satisfied = False
                continue
            like = "Like" in operator
            hit = any(value == e or (like and _pattern(e, False).fullmatch(value))
                      for value in actual for e in expected)
            if hit == ("Not" in operator):
                satisfied = False
    return satisfied, missing


def _matched(source: Source, index: int) -> dict[str, Any]:
    start, end = _statement_spans(source.text)[index]
    return {"SourcePolicyId": source.id, "SourcePolicyType": source.type,
            "StartPosition": _position(source.text, start),
            "EndPosition": _position(source.text, end)}


def _position(text: str, offset: int) -> dict[str, int]:
    """1-based line and column of ``offset`` (an end is just past the closing brace)."""
    line_start = text.rfind("\n", 0, offset) + 1
    return {"Line": text.count("\n", 0, offset) + 1, "Column": offset - line_start + 1}


def _statement_spans(text: str) -> list[tuple[int, int]]:
    """Where each statement of a policy document's text starts and ends."""
    decoder = json.JSONDecoder()

    def skip(i: int) -> int:
        while i < len(text) and text[i] in " \t\r\n,:":
            i += 1
        return i

    spans: list[tuple[int, int]] = []
    i = skip(text.index("{") + 1)
    while text[i] != "}":
        key, i = decoder.raw_decode(text, i)
        i = skip(i)
        if key == "Statement" and text[i] == "[":
            i = skip(i + 1)
            while text[i] != "]":
                start = i
                _, i = decoder.raw_decode(text, i)
                spans.append((start, i))
                i = skip(i)
            i += 1
        else:
            start = i
            _, i = decoder.raw_decode(text, i)
            if key == "Statement":
                spans.append((start, i))
        i = skip(i)
    return spans


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
        raise AccessDenied(NOT_AUTHORIZED.format(caller=arn, action=SIMULATE_ACTION,
                                                 resource=resource, why=why))


def _simulate_principal_policy(self: Any) -> ActionResult:
    """IAM ``SimulatePrincipalPolicy`` (see the module docstring)."""
    arn = self._get_param("PolicySourceArn")
    sources = principal_sources(arn)
    _authorize(self, arn)
    resources = self._get_param("ResourceArns") or ["*"]
    context = {entry["ContextKeyName"].lower(): list(entry.get("ContextKeyValues", []))
               for entry in self._get_param("ContextEntries") or []}
    results = [_result(sources, action, resources, context)
               for action in self._get_param("ActionNames")]
    marker = self._get_param("Marker")
    start = 0
    if marker is not None:
        if not marker.isdigit() or int(marker) > len(results):
            raise InvalidInput(INVALID_MARKER.format(marker=marker))
        start = int(marker)
    end = start + int(self._get_param("MaxItems") or MAX_ITEMS_DEFAULT)
    page: dict[str, Any] = {"EvaluationResults": results[start:end],
                            "IsTruncated": end < len(results)}
    if end < len(results):
        page["Marker"] = str(end)
    return ActionResult(page)


def _result(sources: list[Source], action: str, resources: list[str],
            context: dict[str, list[str]]) -> dict[str, Any]:
    """One EvaluationResult: per action, the most restrictive decision over the resources
    (and each resource's own when a list was given)."""
    decisions = [evaluate(sources, action, r, context) for r in resources]
    rank = (EXPLICIT_DENY, IMPLICIT_DENY, ALLOWED)
    worst = min(decisions, key=lambda d: rank.index(d.decision))
    result: dict[str, Any] = {"EvalActionName": action, "EvalResourceName": resources[0],
                              "EvalDecision": worst.decision,
                              "MatchedStatements": worst.matched,
                              "MissingContextValues": worst.missing}
    if resources != ["*"]:
        result["MissingContextValues"] = []
        result["ResourceSpecificResults"] = [
            {"EvalResourceName": r, "EvalResourceDecision": d.decision,
             "MatchedStatements": d.matched, "MissingContextValues": d.missing}
            for r, d in zip(resources, decisions, strict=True)]
    return result
