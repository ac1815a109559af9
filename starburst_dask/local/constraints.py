"""A request's parameters checked against its botocore input shape, as AWS checks them.

AWS's services validate every request against the same Smithy models botocore ships:
required members, types, ``min``/``max`` (string lengths, list and map sizes, numbers),
``pattern`` and ``enum``. botocore's client checks only required members, types and
``min``; :func:`violations` checks all of them and returns what AWS would name, in the
order AWS lists them (members in model order).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import regex
from botocore.model import ListShape, MapShape, Shape, StructureShape

_NUMBERS = ("integer", "long", "float", "double")
#: Java's ``\\w``, ``\\d`` and ``\\s`` are ASCII-only (botocore's patterns are Java regexes).
_JAVA_CLASSES = {"w": "A-Za-z0-9_", "d": "0-9", "s": " \\t\\n\\x0b\\f\\r"}
#: A UTF-16 surrogate pair written as two escapes: Java reads it as one code point.
_SURROGATE_PAIR = regex.compile(r"\\u(D[89AB][0-9A-F]{2})\\u(D[C-F][0-9A-F]{2})", regex.I)


@dataclass(frozen=True)
class Violation:
    """One broken constraint.

    Attributes
    ----------
    path : list
        Member names and 1-based list indices from the input's root to the value.
    wire : str
        The member's name on the wire (query protocols: ``TagSpecification.1.ResourceType``).
    value : Any
        The value sent (``None`` when a required member is missing).
    constraint : str
        AWS's wording: ``"Member must have length less than or equal to 128"``.
    kind : str
        ``required``, ``type``, ``length``, ``range``, ``pattern`` or ``enum``.
    """

    path: tuple[str | int, ...]
    wire: str
    value: Any
    constraint: str
    kind: str


class WrongType(Exception):
    """A value that cannot be read as its shape's type (``SerializationException``)."""

    def __init__(self, path: tuple[str | int, ...], wire: str, value: Any, type_name: str):
        super().__init__(f"{value!r} is not a {type_name}")
        self.path, self.wire, self.value, self.type_name = path, wire, value, type_name


def violations(
    shape: Shape, params: Any, wire_names: bool = False, unchecked: frozenset[str] = frozenset()
) -> list[Violation]:
    """Every constraint of ``shape`` that ``params`` breaks.

    Parameters
    ----------
    shape : botocore.model.Shape
        The operation's input shape.
    params : Any
        The decoded input (dicts, lists, str, int, float, bool).
    wire_names : bool
        Name members by their EC2 query names in :attr:`Violation.wire`.
    unchecked : frozenset
        Top-level members that were not decoded: not reported missing.

    Raises
    ------
    WrongType
        A value is not of its member's type.
    """
    return list(_walk(shape, params, (), "", wire_names, unchecked))


def _walk(
    shape: Shape,
    value: Any,
    path: tuple,
    wire: str,
    ec2: bool,
    unchecked: frozenset[str] = frozenset(),
) -> Iterator[Violation]:
    kind = shape.type_name
    # botocore builds each of these shape classes from its type name (ShapeResolver).
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            raise WrongType(path, wire, value, "structure")
        if shape.is_document_type:
            return
        for name in shape.required_members:
            if value.get(name) is None and name not in unchecked:
                yield Violation(
                    (*path, name),
                    _join(wire, _wire_name(name, shape, ec2)),
                    None,
                    "Member must not be null",
                    "required",
                )
        for name, member in shape.members.items():
            if value.get(name) is not None:
                yield from _walk(
                    member,
                    value[name],
                    (*path, name),
                    _join(wire, _wire_name(name, shape, ec2)),
                    ec2,
                )
        return
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            raise WrongType(path, wire, value, "list")
        yield from _size(shape, value, path, wire)
        for index, item in enumerate(value, 1):
            if item is not None:
                yield from _walk(shape.member, item, (*path, index), f"{wire}.{index}", ec2)
        return
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            raise WrongType(path, wire, value, "map")
        yield from _size(shape, value, path, wire)
        for key, item in value.items():
            yield from _walk(shape.key, key, path, wire, ec2)
            if item is not None:
                yield from _walk(shape.value, item, path, wire, ec2)
        return
    if kind == "string":
        if not isinstance(value, str):
            raise WrongType(path, wire, value, "string")
        yield from _string(shape, value, path, wire)
    elif kind in _NUMBERS:
        integral = kind in ("integer", "long")
        if isinstance(value, bool) or not isinstance(value, int if integral else (int, float)):
            raise WrongType(path, wire, value, kind)
        yield from _range(shape, value, path, wire)
    elif kind == "boolean" and not isinstance(value, bool):
        raise WrongType(path, wire, value, "boolean")


def _string(shape: Shape, value: str, path: tuple, wire: str) -> Iterator[Violation]:
    meta = shape.metadata
    enum = meta.get("enum")
    if enum and value not in enum:
        yield Violation(
            path, wire, value, f"Member must satisfy enum value set: [{', '.join(enum)}]", "enum"
        )
    yield from _size(shape, value, path, wire)
    pattern = meta.get("pattern")
    compiled = _compile(pattern) if pattern else None
    if compiled is not None and not compiled.fullmatch(value):
        yield Violation(
            path,
            wire,
            value,
            f"Member must satisfy regular expression pattern: {pattern}",
            "pattern",
        )


def _size(shape: Shape, value: str | list | dict, path: tuple, wire: str) -> Iterator[Violation]:
    meta = shape.metadata
    # Java counts a string's length in UTF-16 code units.
    size = len(value.encode("utf-16-le")) // 2 if isinstance(value, str) else len(value)
    if "max" in meta and size > meta["max"]:
        yield Violation(
            path,
            wire,
            value,
            f"Member must have length less than or equal to {meta['max']}",
            "length",
        )
    if "min" in meta and size < meta["min"]:
        yield Violation(
            path,
            wire,
            value,
            f"Member must have length greater than or equal to {meta['min']}",
            "length",
        )


def _range(shape: Shape, value: float, path: tuple, wire: str) -> Iterator[Violation]:
    meta = shape.metadata
    if "max" in meta and value > meta["max"]:
        yield Violation(
            path,
            wire,
            value,
            f"Member must have value less than or equal to {meta['max']}",
            "range",
        )
    if "min" in meta and value < meta["min"]:
        yield Violation(
            path,
            wire,
            value,
            f"Member must have value greater than or equal to {meta['min']}",
            "range",
        )


def _wire_name(name: str, parent: StructureShape, ec2: bool) -> str:
    if not ec2:
        return name
    member = parent.members[name]
    wire = member.serialization.get("queryName") or member.serialization.get("name") or name
    return wire[0].upper() + wire[1:]


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


@functools.cache
def _compile(pattern: str) -> regex.Pattern | None:
    """A model's Java pattern as a compiled regex; ``None`` if it cannot be compiled."""
    try:
        return regex.compile(java_to_python(pattern))
    except regex.error:
        return None


def java_to_python(pattern: str) -> str:
    """A Java regex in ``regex``'s syntax: ``\\w``, ``\\d``, ``\\s`` made ASCII as in Java."""
    pattern = _SURROGATE_PAIR.sub(_code_point, pattern)
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            if escaped in _JAVA_CLASSES:
                ascii_class = _JAVA_CLASSES[escaped]
                out.append(ascii_class if in_class else f"[{ascii_class}]")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class and out and out[-1] != "[":
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


def _code_point(pair: regex.Match) -> str:
    high, low = int(pair[1], 16), int(pair[2], 16)
    return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}"
