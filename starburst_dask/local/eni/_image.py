"""Keep a local Fargate task process to its image's packages.

The local Fargate sets ``STARBURST_LOCAL_IMAGE_DENIED_MODULES`` (top-level modules of
this environment's distributions that the task's image does not contain) and
``STARBURST_LOCAL_IMAGE_DENIED_DISTRIBUTIONS``. :func:`restrict` wraps every finder on
``sys.meta_path`` so that those modules and distributions are not found: importing one
raises ``ModuleNotFoundError`` from Python's own import system, ``importlib.util.find_spec``
answers ``None`` and ``importlib.metadata`` does not list it, as in an image without it.
Standard library only: this runs at interpreter start-up, from ``sitecustomize``.
"""

import os
import re
import sys


class _Without:
    """A meta path finder that finds what ``finder`` finds, less the denied names."""

    def __init__(self, finder, modules, distributions):
        self._finder = finder
        self._modules = modules
        self._distributions = distributions

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] in self._modules:
            return None
        find_spec = getattr(self._finder, "find_spec", None)
        return find_spec(fullname, path, target) if find_spec else None

    def find_distributions(self, *args, **kwargs):
        find = getattr(self._finder, "find_distributions", None)
        for dist in find(*args, **kwargs) if find else ():
            # The name from the dist-info directory where it can (as importlib.metadata
            # does): parsing every METADATA file cost each task process 0.1 s and more.
            name = getattr(dist, "_normalized_name", None) or dist.metadata["Name"] or ""
            if re.sub(r"[-_.]+", "-", name).lower() not in self._distributions:
                yield dist

    def __getattr__(self, name):
        return getattr(self._finder, name)


def restrict():
    """Add the image's own packages to ``sys.path``; hide the denied modules and
    distributions named in the environment, if any."""
    paths = os.environ.get("STARBURST_LOCAL_IMAGE_PATHS")
    if paths:  # site-packages of the image: after the interpreter's own
        sys.path.extend(paths.split(os.pathsep))
    modules = os.environ.get("STARBURST_LOCAL_IMAGE_DENIED_MODULES")
    if not modules:
        return
    distributions = os.environ.get("STARBURST_LOCAL_IMAGE_DENIED_DISTRIBUTIONS", "")
    modules = frozenset(modules.split(","))
    distributions = frozenset(distributions.split(","))
    sys.meta_path[:] = [_Without(f, modules, distributions) for f in sys.meta_path]
