"""Sensitive values: kept out of ``environment=``, passed by reference with ``secrets=``.

``environment=`` values travel in every RunTask's overrides, which anyone allowed
``ecs:DescribeTasks`` reads back; ``secrets=`` names a Secrets Manager secret or a Systems
Manager parameter that ECS reads with the execution role when a task starts, into its
environment only. So a variable that looks like a credential, by its name or its value
(:data:`CREDENTIAL_NAMES`, :data:`CREDENTIAL_VALUES`), is refused in ``environment=``,
and every ``secrets=`` reference is checked for the forms ECS accepts, before any AWS call.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import ConfigurationError


class Pattern(NamedTuple):
    """What a credential looks like, and what it is, to name it in the error."""

    regex: re.Pattern[str]
    kind: str


#: Variable names that say they hold a credential (case-insensitive, the whole name).
CREDENTIAL_NAMES = (
    Pattern(re.compile(r"AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN", re.I), "AWS credentials"),
    Pattern(re.compile(r".*_TOKEN", re.I), "a token"),
    Pattern(re.compile(r".*(PASSWORD|PASSWD).*", re.I), "a password"),
    Pattern(re.compile(r".*SECRET.*", re.I), "a secret"),
    Pattern(re.compile(r".*(API_?KEY|PRIVATE_KEY).*", re.I), "a key"),
)
#: Values that are credentials whatever their variable's name. Sources: IAM user guide,
#: "IAM identifiers" (unique ID prefixes AKIA, access keys; ASIA, temporary ones); GitHub
#: docs, "About authentication to GitHub" (token prefixes ghp_, gho_, ghu_, ghs_, ghr_,
#: github_pat_); Slack API docs, "Token types" (xoxb-, xoxp-, xoxa-, xoxe-...); RFC 7468
#: (PEM private keys); Stripe docs, "API keys" (sk_live_, rk_live_).
CREDENTIAL_VALUES = (
    Pattern(re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), "an AWS access key id"),
    Pattern(re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"), "a private key"),
    Pattern(re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36}|github_pat_\w{22,})"), "a GitHub token"),
    Pattern(re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    Pattern(re.compile(r"\b[rs]k_live_[A-Za-z0-9]{16,}"), "a Stripe key"),
)

#: An environment variable name (POSIX: letters, digits, underscores; no leading digit).
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A Secrets Manager secret's ARN, optionally ``:json-key:version-stage:version-id``
#: ("Pass Secrets Manager secrets through Amazon ECS environment variables"); secret
#: names are letters, digits and ``/_+=.@-`` (Secrets Manager API reference, CreateSecret).
SECRET_REFERENCE = re.compile(
    r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:(?P<name>[A-Za-z0-9/_+=.@-]+)"
    r"(?::(?P<key>[^:]*):(?P<stage>[^:]*):(?P<version>[^:]*))?"
)
#: A Systems Manager parameter's ARN, or its name (``a-zA-Z0-9_.-`` and ``/`` levels), in
#: the cluster's region ("Pass Systems Manager parameters through Amazon ECS environment
#: variables"; Systems Manager user guide, "Requirements and constraints for parameter names").
PARAMETER_ARN = re.compile(
    r"arn:aws[a-z-]*:ssm:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):parameter/?(?P<name>.+)"
)
PARAMETER_NAME = re.compile(r"/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
PARAMETER_NAME_MAX = 2048

_FORMS = (
    "a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>, "
    "optionally followed by :<json-key>:<version-stage>:<version-id>, e.g. ...:password::), "
    "an SSM parameter ARN (arn:aws:ssm:<region>:<account>:parameter/<name>), or an SSM "
    "parameter name of the cluster's region (/app/password)"
)


def credential_kind(name: str, value: str) -> str | None:
    """What ``name``/``value`` looks like a credential as (its name first), or None."""
    for pattern in CREDENTIAL_NAMES:
        if pattern.regex.fullmatch(name):
            return f"{pattern.kind} (by its name)"
    for pattern in CREDENTIAL_VALUES:
        if pattern.regex.search(value):
            return f"{pattern.kind} (by its value)"
    return None


def check_environment(environment: dict[str, str]) -> None:
    """Refuse an ``environment=`` variable that looks like a credential; never echo its value."""
    for name, value in environment.items():
        kind = credential_kind(name, value)
        if kind:
            raise ConfigurationError(
                f"environment variable {name} looks like {kind}: environment= values travel "
                "in every task's RunTask overrides, which anyone allowed ecs:DescribeTasks "
                "can read. Store it in Secrets Manager (or SSM Parameter Store) and pass "
                f"secrets={{{name!r}: '<secret ARN>'}} instead: ECS reads it when the task "
                "starts, into its environment only"
            )


def check_secrets(secrets: dict[str, str], environment: dict[str, str]) -> None:
    """Refuse a ``secrets=`` entry ECS would not accept, or one also in ``environment=``."""
    for name, value_from in secrets.items():
        if not ENV_NAME.fullmatch(name):
            raise ConfigurationError(
                f"secrets: {name!r} is not an environment variable name (letters, digits "
                "and '_', not starting with a digit): name the variable the task reads"
            )
        if name in environment:
            raise ConfigurationError(
                f"{name} is in both environment= and secrets=: pass it in secrets= only"
            )
        problem = reference_problem(value_from)
        if problem:
            raise ConfigurationError(f"secrets: {name}={value_from!r} {problem}")


def reference_problem(value_from: str) -> str | None:
    """Why ECS would not read ``value_from`` (a ``secrets`` entry's ``valueFrom``), or None."""
    secret = SECRET_REFERENCE.fullmatch(value_from)
    if secret:
        if secret["stage"] and secret["version"]:
            return (
                "names both a version stage and a version id; ECS takes one: leave one "
                "empty (...:<json-key>:<version-stage>: or ...:<json-key>::<version-id>)"
            )
        return None
    if value_from.startswith("arn:") and ":secretsmanager:" in value_from:
        return f"is not a secret reference ECS reads: pass {_FORMS}"
    if PARAMETER_ARN.fullmatch(value_from):
        return None
    if (
        not value_from.startswith("arn:")
        and len(value_from) <= PARAMETER_NAME_MAX
        and PARAMETER_NAME.fullmatch(value_from)
    ):
        return None
    return f"is not a secret reference ECS reads: pass {_FORMS}"


def is_secret(value_from: str) -> bool:
    """Whether ``value_from`` names a Secrets Manager secret (else an SSM parameter)."""
    return SECRET_REFERENCE.fullmatch(value_from) is not None
