"""Which of this environment's packages a task's image contains, computed once per image.

The local Python environment stands in for every image's environment. A task may import
only what its image would contain: the distributions its image installs, closed over
their requirements (as conda or pip would have installed them), among those installed
here. Every other installed distribution's top-level modules are denied to the task's
processes by ``eni/_image.py``; modules outside any installed distribution (the standard
library, ``PYTHONPATH`` directories) are not filtered.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterable
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement

#: Environment variables telling a task process what its image lacks (read by ``_image.py``):
#: top-level module names, and distribution names (hidden from ``importlib.metadata``).
DENIED_MODULES_VAR = "STARBURST_LOCAL_IMAGE_DENIED_MODULES"
DENIED_DISTRIBUTIONS_VAR = "STARBURST_LOCAL_IMAGE_DENIED_DISTRIBUTIONS"
#: Directories of the image's own packages (the user's wheels), put on ``sys.path``.
IMAGE_PATHS_VAR = "STARBURST_LOCAL_IMAGE_PATHS"


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them (``PyYAML`` -> ``pyyaml``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.cache
def installed() -> dict[str, metadata.Distribution]:
    """This environment's distributions by normalized name (the first on ``sys.path`` wins)."""
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(normalize(name), dist)
    return found


@functools.cache
def top_level_modules() -> dict[str, frozenset[str]]:
    """Each installed distribution's top-level modules.

    From the installed files (``packages_distributions``); a distribution that lists none
    (an editable install, say) is taken to provide the module named after it.
    """
    modules: dict[str, set[str]] = {}
    for module, names in metadata.packages_distributions().items():
        for name in names:
            modules.setdefault(normalize(name), set()).add(module)
    return {name: frozenset(modules.get(name) or {name.replace("-", "_")}) for name in installed()}


def closure(roots: Iterable[str]) -> frozenset[str]:
    """``roots`` and, transitively, their requirements (markers evaluated, no extras).

    Only distributions installed here are followed: others cannot be imported anyway.
    Cached: computed once per set of roots.
    """
    return _closure(frozenset(normalize(r) for r in roots))


@functools.cache
def _closure(roots: frozenset[str]) -> frozenset[str]:
    dists = installed()
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in dists:
            continue
        seen.add(name)
        for line in dists[name].requires or []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(normalize(requirement.name))
    return frozenset(seen)


@functools.cache
def installed_bytes(names: frozenset[str]) -> int:
    """The bytes the distributions ``names`` occupy installed here (their RECORD files)."""
    dists = installed()
    total = 0
    for name in names & set(dists):
        for file in dists[name].files or []:
            total += file.size or 0
    return total


@functools.cache
def denied(allowed: frozenset[str]) -> dict[str, str]:
    """The environment variables that keep a task to the distributions ``allowed``.

    Cached: computed once per image (per set of allowed distributions).
    """
    modules = top_level_modules()
    others = set(modules) - allowed
    keep = set().union(*(modules[name] for name in allowed if name in modules))
    names = set().union(*(modules[name] for name in others)) - keep
    names -= set(sys.stdlib_module_names)  # a backport never hides the standard library
    return {
        DENIED_MODULES_VAR: ",".join(sorted(names)),
        DENIED_DISTRIBUTIONS_VAR: ",".join(sorted(others)),
    }
