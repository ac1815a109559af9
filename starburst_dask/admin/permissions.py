"""Which of the project's IAM actions the caller lacks, asked of IAM's policy simulator.

``doctor`` finds the caller (``GetCallerIdentity``), turns it into the principal IAM
simulates (a user, or the role behind an assumed-role session) and asks
``SimulatePrincipalPolicy`` about each group of :data:`.policy.ACTIONS` in one call
(paged), on every resource (``*``) with no context; and about ``iam:PassRole`` on the
project's roles, passed to their service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

#: The simulator's decision for an action a policy denies by a ``Deny`` statement.
EXPLICIT_DENY = "explicitDeny"

_USER = re.compile(r"arn:[\w-]+:iam::\d{12}:user/.+")
_ROOT = re.compile(r"arn:[\w-]+:iam::\d{12}:root")
_ASSUMED = re.compile(r"arn:([\w-]+):sts::(\d{12}):assumed-role/([^/]+)/.+")


class NotSimulated(Exception):
    """The caller cannot be simulated (why, in words)."""


@dataclass(frozen=True)
class Missing:
    """Actions the principal may not call: denied explicitly, or allowed by no policy."""

    denied: tuple[str, ...]
    not_allowed: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.denied or self.not_allowed)

    def __add__(self, other: Missing) -> Missing:
        return Missing(self.denied + other.denied, self.not_allowed + other.not_allowed)

    def describe(self, most: int = 6) -> str:
        """The missing actions in words, at most ``most`` named of each kind."""
        parts = []
        if self.not_allowed:
            parts.append("no policy allows " + _some(self.not_allowed, most))
        if self.denied:
            parts.append("a policy denies " + _some(self.denied, most))
        return "; ".join(parts)

    def fix(self, command: str) -> str:
        """What to do: attach the policy ``command`` prints, or remove a Deny."""
        fixes = []
        if self.not_allowed:
            fixes.append(
                f"attach the policy `{command}` prints (missing: "
                f"{', '.join(sorted(self.not_allowed))})"
            )
        if self.denied:
            fixes.append(f"remove the Deny of {', '.join(sorted(self.denied))} from your policies")
        return "; ".join(fixes)


def _some(actions: tuple[str, ...], most: int) -> str:
    named = sorted(actions)
    if len(named) <= most:
        return ", ".join(named)
    return f"{', '.join(named[:most])} and {len(named) - most} more"


def principal(caller_arn: str, iam: Any) -> str | None:
    """The ARN IAM simulates for ``caller_arn``; None for the account's root user.

    Parameters
    ----------
    caller_arn : str
        ``Arn`` of ``GetCallerIdentity``.
    iam : botocore client
        IAM, to find an assumed role's ARN with its path (``GetRole``).

    Raises
    ------
    NotSimulated
        A caller that is neither root, an IAM user nor an assumed role.
    """
    if _ROOT.fullmatch(caller_arn):
        return None
    if _USER.fullmatch(caller_arn):
        return caller_arn
    match = _ASSUMED.fullmatch(caller_arn)
    if match is None:
        raise NotSimulated(f"{caller_arn} is not an IAM user or role")
    partition, account, role = match.groups()
    try:
        return str(iam.get_role(RoleName=role)["Role"]["Arn"])
    except ClientError:  # may not read it: the ARN without the role's path
        return f"arn:{partition}:iam::{account}:role/{role}"


def missing(
    iam: Any,
    principal_arn: str,
    actions: tuple[str, ...],
    resources: list[str] | None = None,
    context: dict[str, str] | None = None,
) -> Missing:
    """The ``actions`` the identity-based policies of ``principal_arn`` do not allow.

    Parameters
    ----------
    iam : botocore client
    principal_arn : str
        A user's, group's or role's ARN.
    actions : tuple of str
        IAM actions, all asked in one call (paged).
    resources : list of str, optional
        The resources the actions act on (default every resource, ``*``).
    context : dict, optional
        Condition keys and their values (e.g. ``iam:PassedToService``).

    Raises
    ------
    botocore.exceptions.ClientError
        From ``SimulatePrincipalPolicy`` (e.g. ``AccessDenied``: the caller may not call it).
    """
    request: dict[str, Any] = {"PolicySourceArn": principal_arn, "ActionNames": list(actions)}
    if resources:
        request["ResourceArns"] = resources
    if context:
        request["ContextEntries"] = [
            {"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "string"}
            for k, v in context.items()
        ]
    denied, not_allowed = [], []
    pages = iam.get_paginator("simulate_principal_policy").paginate(**request)
    for page in pages:
        for result in page["EvaluationResults"]:
            if result["EvalDecision"] == EXPLICIT_DENY:
                denied.append(result["EvalActionName"])
            elif result["EvalDecision"] != "allowed":
                not_allowed.append(result["EvalActionName"])
    return Missing(tuple(denied), tuple(not_allowed))
