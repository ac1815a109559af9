"""The ``starburst`` dask config namespace: packaged defaults and schema, user overrides on top.

Like every dask project, defaults ship as a yaml file (``starburst.yaml``, each key described
in ``starburst-schema.yaml``) and are merged under whatever the user set in
``~/.config/dask/*.yaml`` or ``DASK_STARBURST__*`` environment variables.

Every key is an option, named by a rule rather than a table (:func:`option_name`): the
key's path with ``-`` and ``.`` as ``_``, leaving out a section's name when the key already
says it (``cost.alert`` is ``cost_alert``, ``cost.max-cost`` is ``max_cost``). Clusters read
options through :class:`~starburst_dask.options.ClusterOptions`; the setup, doctor and image
commands, which have no cluster, through :func:`setting`.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Iterable, Iterator
from typing import Any

import dask.config
import yaml

from . import values
from .errors import ConfigurationError

DEFAULTS_FILE = os.path.join(os.path.dirname(__file__), "starburst.yaml")
SCHEMA_FILE = os.path.join(os.path.dirname(__file__), "starburst-schema.yaml")

with open(DEFAULTS_FILE) as f:
    _DEFAULTS: dict[str, Any] = yaml.safe_load(f)
with open(SCHEMA_FILE) as f:
    SCHEMA: dict[str, Any] = yaml.safe_load(f)

dask.config.update_defaults(copy.deepcopy(_DEFAULTS))  # dask keeps it; ours stays pristine


def option_name(key: str) -> str:
    """The option a config key sets: ``n-workers`` is ``n_workers``, ``quota.interval``
    ``quota_interval``, and ``cost.max-cost`` ``max_cost`` (the key already says "cost")."""
    *sections, leaf = key.split(".")
    words = leaf.split("-")
    return "_".join([s for s in sections if s not in words] + words)


def _keys(schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Each key the schema describes, dotted, with its schema; sections are objects with
    ``properties``, while free mappings (``environment``, ``tags``) are keys themselves."""
    for key, node in schema["properties"].items():
        if "properties" in node:
            yield from _keys(node, f"{prefix}{key}.")
        else:
            yield prefix + key, node


_SCHEMA_KEYS = dict(_keys(SCHEMA["properties"]["starburst"]))
#: Every option by name: its key under ``starburst.`` in dask config.
OPTIONS: dict[str, str] = {option_name(k): k for k in _SCHEMA_KEYS}
#: Options a cluster uses (:class:`~starburst_dask.options.ClusterOptions`' fields); the
#: rest (``x-commands-only`` in the schema) configure the setup and image commands only.
CLUSTER_OPTIONS = tuple(n for n, k in OPTIONS.items() if not _SCHEMA_KEYS[k].get("x-commands-only"))
#: Former option names, still accepted as arguments and (with dashes) as config keys, as
#: users' config files and setup's earlier output have them.
ALIASES = {
    "cluster": "ecs_cluster",
    "launch_timeout": "running_timeout",
    "launch_deadline": "launch_retry_timeout",
}
#: Each renamed option's former config key.
_FORMER_KEYS = {new: old.replace("_", "-") for old, new in ALIASES.items()}


def setting(name: str) -> Any:
    """The configured value of option ``name`` (dask config ``starburst.<its key>``), typed
    and checked as its schema says (:func:`values.checked`).

    A value under the option's former key (say ``starburst.cluster``) counts when the current
    key is left at its default.

    Raises
    ------
    ConfigurationError
        The value is not one the option takes (naming the key and where it is set), or the
        former and the current key are both set, to different values.
    """
    key = OPTIONS[name]
    value = dask.config.get(f"starburst.{key}")
    former = _FORMER_KEYS.get(name)
    old = dask.config.get(f"starburst.{former}", None) if former else None
    if old is not None and old != value:
        if value != _default(key):
            raise ConfigurationError(
                f"dask config sets both starburst.{key} ({value!r}) and its former name "
                f"starburst.{former} ({old!r}): keep only starburst.{key}"
            )
        key, value = str(former), old
    return values.checked(node(name), value, origin(name, key))


def node(name: str) -> dict[str, Any]:
    """Option ``name``'s schema, with its default."""
    key = OPTIONS[name]
    return {**_SCHEMA_KEYS[key], "default": _default(key)}


def origin(name: str, key: str | None = None) -> values.Origin:
    """Where option ``name``'s value comes from: config key ``key``, else an argument."""
    if key is None:
        return values.Origin(name)
    return values.Origin(name, key, lambda: where(key))


def check_values() -> None:
    """Check every configured key's value (what :func:`setting` checks, all at once).

    Raises
    ------
    ConfigurationError
        For the first unknown key or invalid value, naming where it is set.
    """
    check_keys()
    for name in OPTIONS:
        setting(name)


def environment_variable(key: str) -> str:
    """The environment variable that sets ``starburst.<key>``, in dask's form."""
    return "DASK_STARBURST__" + key.upper().replace(".", "__").replace("-", "_")


def where(key: str) -> str:
    """Where ``starburst.<key>`` is set: its environment variable, else the last dask
    config file that sets it (the one dask's merge keeps), else ``"dask config"``."""
    variable = environment_variable(key)
    if variable in os.environ:
        return variable
    found = "dask config"
    for path in _config_files():
        try:
            with open(path) as f:
                tree: Any = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError):
            continue
        for part in ["starburst", *key.split(".")]:
            tree = _child(tree, part)
        if tree is not _ABSENT:
            found = path
    return found


def configured_in_file(name: str, value: Any) -> str | None:
    """The file that configured option ``name`` when its configured value is ``value``
    (so the value came from it, not from an argument); else ``None``."""
    try:
        if setting(name) != value:
            return None
    except ConfigurationError:
        return None
    found = where(OPTIONS[name])
    return found if os.path.isfile(found) else None


_ABSENT = object()


def _child(tree: Any, part: str) -> Any:
    if not isinstance(tree, dict):
        return _ABSENT
    for raw, value in tree.items():  # dask reads "_" in keys as "-"
        if str(raw).replace("_", "-") == part:
            return value
    return _ABSENT


def _config_files() -> list[str]:
    """dask's config files in the order it merges them (as ``dask.config.collect_yaml``)."""
    files: list[str] = []
    for path in dask.config.paths:
        if os.path.isdir(path):
            files += sorted(
                os.path.join(path, p)
                for p in os.listdir(path)
                if os.path.splitext(p)[1].lower() in (".json", ".yaml", ".yml")
            )
        elif os.path.isfile(path):
            files.append(path)
    return files


def _default(key: str) -> Any:
    value: Any = _DEFAULTS["starburst"]
    for part in key.split("."):
        value = value[part]
    return value


def check_keys() -> None:
    """Refuse a ``starburst.*`` config key that no option has: a typo would be ignored.

    Raises
    ------
    ConfigurationError
        Naming the first unknown key and the closest valid one.
    """
    known = set(OPTIONS.values()) | set(_FORMER_KEYS.values())
    sections = {k.rsplit(".", 1)[0] for k in OPTIONS.values() if "." in k}
    for key in _configured(dask.config.get("starburst", {}) or {}, known, sections):
        raise ConfigurationError(
            f"unknown config key starburst.{key}{did_you_mean(key, known, 'starburst.')} "
            "Rename or remove it where it is set (~/.config/dask/*.yaml, or a DASK_STARBURST__*"
            " environment variable); docs/configuration.md lists every key."
        )


def _configured(
    values: dict[str, Any], known: set[str], sections: set[str], prefix: str = ""
) -> Iterator[str]:
    """The unknown keys among ``values`` (dask reads ``_`` in keys as ``-``)."""
    for raw, value in values.items():
        key = prefix + str(raw).replace("_", "-")
        if key in sections and isinstance(value, dict):
            yield from _configured(value, known, sections, f"{key}.")
        elif key not in known:
            yield key


def did_you_mean(word: str, choices: Iterable[str], prefix: str = "") -> str:
    """``": did you mean <prefix><closest choice>?"``, else ``"."`` (none is close).

    A choice matches whole or by its last part, so ``max-cots`` finds ``cost.max-cost``.
    """
    by_text: dict[str, str] = {}
    for choice in choices:
        by_text.setdefault(choice, choice)
        by_text.setdefault(choice.rsplit(".", 1)[-1], choice)
    for text in (word, word.rsplit(".", 1)[-1]):
        match = difflib.get_close_matches(text, by_text, n=1, cutoff=0.6)
        if match:
            return f": did you mean {prefix}{by_text[match[0]]}?"
    return "."
