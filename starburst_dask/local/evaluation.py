"""IAM's policy evaluation logic for identity-based policies, as the simulator applies it.

A matching ``Deny`` statement wins, else a matching ``Allow`` allows, else the action is
implicitly denied ("Policy evaluation logic", IAM user guide). Statements match on
``Action``/``NotAction`` (wildcards ``*`` and ``?``, case-insensitive),
``Resource``/``NotResource`` (wildcards, case-sensitive) and ``Condition``, evaluated for
the operators in :data:`CONDITION_OPERATORS` from the context's values; a condition whose
key has no value, or whose operator is not among those, does not match.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY = "allowed", "explicitDeny", "implicitDeny"
#: The condition operators evaluated; others never match (see the module docstring).
CONDITION_OPERATORS = ("StringEquals", "StringNotEquals", "StringLike", "StringNotLike")


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


def evaluate(
    sources: list[Source], action: str, resource: str, context: dict[str, list[str]]
) -> Decision:
    """IAM's decision on ``action`` and ``resource`` under ``sources``.

    ``context`` maps condition keys (lower case) to their values.
    """
    allows: list[dict[str, Any]] = []
    denies: list[dict[str, Any]] = []
    missing: list[str] = []
    for source in sources:
        for index, statement in enumerate(source.statements()):
            if not (_matches_action(statement, action) and _matches_resource(statement, resource)):
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
    return "Resource" in statement and _any_match(_values(statement, "Resource"), resource, False)


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
            hit = any(
                value == e or (like and _pattern(e, False).fullmatch(value))
                for value in actual
                for e in expected
            )
            if hit == ("Not" in operator):
                satisfied = False
    return satisfied, missing


def _matched(source: Source, index: int) -> dict[str, Any]:
    start, end = _statement_spans(source.text)[index]
    return {
        "SourcePolicyId": source.id,
        "SourcePolicyType": source.type,
        "StartPosition": _position(source.text, start),
        "EndPosition": _position(source.text, end),
    }


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
