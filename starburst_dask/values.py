"""Option values as users give them, typed and checked by the schema in one place.

Arguments, dask config files and ``DASK_STARBURST__*`` environment variables go through
:func:`checked`, which reads the option's node of ``starburst-schema.yaml``: its ``type``
or ``enum``, bounds (``minimum``, ``exclusiveMinimum``, ``exclusiveMaximum``,
``minLength``), ``examples``, ``x-hint`` (said with any refusal), and ``x-duration``
(seconds, or dask's durations like ``"5m"``). Config and the environment spell booleans
as text too (``"false"``, ``"no"``, ``"0"``), parsed by their words, never by
truthiness; an argument takes a real bool. A single string where a list is expected is
one item. Each bad value is one :class:`ConfigurationError` naming the option, the
value's problem and the fix.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from dask.utils import parse_timedelta

from .errors import ConfigurationError

#: How config files and environment variables spell booleans (lower case).
BOOLEAN_WORDS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


class Origin:
    """Where a value came from, as its error names it: an argument, or a config key.

    Parameters
    ----------
    name : str
        The option's argument name.
    key : str or None
        Its config key under ``starburst.`` when the value came from dask config.
    where : callable, optional
        For a config key: where it is set (a file or an environment variable), asked only
        when there is an error to report.
    """

    def __init__(
        self, name: str, key: str | None = None, where: Callable[[], str] | None = None
    ) -> None:
        self.name, self.key, self.where = name, key, where

    @property
    def configured(self) -> bool:
        return self.key is not None

    def refusal(self, problem: str, value: Any, example: Any) -> str:
        """``name must be ..., not value; pass e.g. name=example``, or the same for a config
        key with where it is set (a file, or an environment variable)."""
        if self.key is None:
            return f"{self.name} {problem}, not {value!r}; pass e.g. {self.name}={example!r}"
        where = self.where() if self.where else "dask config"
        fix = (
            f"{where}={_literal(example)}"
            if where.startswith("DASK_")
            else f"starburst.{self.key}: {_literal(example)}"
        )
        shown = _literal(value)
        return f"starburst.{self.key} {problem}, not {shown} (set in {where}); set e.g. {fix}"


def checked(node: Mapping[str, Any], value: Any, origin: Origin) -> Any:
    """``value`` typed as the schema ``node`` describes it.

    Returns
    -------
    The value: booleans parsed, integers and numbers as such, durations in seconds
    (float), lists as tuples of strings, mappings as dicts of strings.

    Raises
    ------
    ConfigurationError
        Naming the option (argument or config key and where it is set), the problem and
        an example of a valid value.
    """
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if value is None:
        if "null" in types or None in node.get("enum", ()):
            return None
        _refuse(node, value, origin, "must be set")
    if "enum" in node:
        return _choice(node, value, origin)
    if node.get("x-duration"):
        return _bounded(node, _duration(node, value, origin), origin, value)
    kind = next(t for t in types if t != "null")
    if kind == "boolean":
        return _boolean(node, value, origin)
    if kind in ("integer", "number"):
        return _bounded(node, _number(node, value, origin, kind == "integer"), origin, value)
    if kind == "string":
        return _text(node, value, origin)
    if kind == "array":
        return _items(node, value, origin)
    return _mapping(node, value, origin)


def _refuse(node: Mapping[str, Any], value: Any, origin: Origin, problem: str) -> NoReturn:
    hint = f" ({node['x-hint']})" if "x-hint" in node else ""
    raise ConfigurationError(origin.refusal(problem + hint, value, _example(node)))


def _example(node: Mapping[str, Any]) -> Any:
    examples = node.get("examples") or [node.get("default")]
    return examples[0]


def _literal(value: Any) -> str:
    """``value`` as YAML (and dask's environment variables) write it."""
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


def _boolean(node: Mapping[str, Any], value: Any, origin: Origin) -> bool:
    parsed = _as_bool(value, origin)
    if parsed is None:
        words = "true or false (or yes/no, 1/0)" if origin.configured else "True or False"
        _refuse(node, value, origin, f"must be {words}")
    return bool(parsed)


def _as_bool(value: Any, origin: Origin) -> bool | None:
    if isinstance(value, bool):
        return value
    if not origin.configured:
        return None  # an argument is a bool: "false" is text, and text is true
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return BOOLEAN_WORDS.get(value.strip().lower())
    return None


def _choice(node: Mapping[str, Any], value: Any, origin: Origin) -> Any:
    choices = node["enum"]
    if isinstance(value, str) and value in choices:
        return value
    if any(isinstance(c, bool) for c in choices):
        parsed = _as_bool(value, origin)
        if parsed is not None:
            return parsed
    shown = [_literal(c) if origin.configured else repr(c) for c in choices]
    _refuse(node, value, origin, f"must be {', '.join(shown[:-1])} or {shown[-1]}")


def _number(node: Mapping[str, Any], value: Any, origin: Origin, whole: bool) -> float | int:
    if origin.configured and isinstance(value, str):
        value = _parsed_number(value)
    what = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(
        value, numbers.Integral if whole else numbers.Real
    ):
        _refuse(node, value, origin, f"must be {what}")
    number: Any = value  # numpy's numbers too
    return int(number) if whole else float(number)


def _parsed_number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _duration(node: Mapping[str, Any], value: Any, origin: Origin) -> float:
    try:
        if isinstance(value, bool) or not isinstance(value, str | numbers.Real):
            raise TypeError(value)
        duration: Any = value
        return float(parse_timedelta(duration, default="seconds"))
    except (TypeError, ValueError, KeyError):
        _refuse(
            node,
            value,
            origin,
            f"must be a duration like {_example(node)!r} or a number of seconds",
        )


def _bounded(node: Mapping[str, Any], value: Any, origin: Origin, given: Any) -> Any:
    """``value`` within the node's bounds; ``given`` is how the user wrote it."""
    unit = " of seconds" if node.get("x-duration") else ""
    if "minimum" in node and value < node["minimum"]:
        _refuse(node, given, origin, f"must be {node['minimum']:g} or more")
    if "exclusiveMinimum" in node and value <= node["exclusiveMinimum"]:
        bound = node["exclusiveMinimum"]
        problem = f"a positive number{unit}" if bound == 0 else f"over {bound:g}{unit}"
        _refuse(node, given, origin, f"must be {problem}")
    if "exclusiveMaximum" in node and value >= node["exclusiveMaximum"]:
        _refuse(node, given, origin, f"must be below {node['exclusiveMaximum']:g}")
    return value


def _text(node: Mapping[str, Any], value: Any, origin: Origin) -> str:
    if isinstance(value, os.PathLike) and node.get("x-path"):
        value = os.fspath(value)
    if not isinstance(value, str):
        _refuse(node, value, origin, "must be text")
    if len(value.strip()) < node.get("minLength", 0):
        _refuse(node, value, origin, "must not be empty")
    return str(value)


def _items(node: Mapping[str, Any], value: Any, origin: Origin) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else value  # one ID is a list of one
    if not isinstance(items, list | tuple):
        _refuse(node, value, origin, "must be a list of text")
    for item in items:
        if not isinstance(item, str) or not item.strip():
            _refuse(node, value, origin, "must be a list of text")
        if any(c in item for c in ", \t\n"):
            _refuse(node, value, origin, "must give each ID as its own list item")
    return tuple(items)


def _mapping(node: Mapping[str, Any], value: Any, origin: Origin) -> dict[str, str]:
    if not isinstance(value, Mapping):
        _refuse(node, value, origin, "must be a mapping of names to values (a dict)")
    allowed = node.get("additionalProperties", {}).get("type", "string")
    allowed = [allowed] if isinstance(allowed, str) else allowed
    kinds = {"string": str, "number": numbers.Real, "boolean": bool}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            _refuse(node, value, origin, f"must have text names (not {key!r})")
        if not isinstance(item, tuple(kinds[k] for k in allowed)):
            names = ["text" if k == "string" else f"a {k}" for k in allowed]
            what = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
            _refuse(node, value, origin, f"must map each name to {what} ({key!r} is {item!r})")
    return {k: str(v) for k, v in value.items()}
