"""Errors a user of starburst-dask may see. Each message names the problem and the fix."""

from __future__ import annotations


class StarburstError(Exception):
    """Base class of every starburst-dask error."""


class ConfigurationError(StarburstError, ValueError):
    """An option is invalid; raised before any AWS call is made."""


class MissingResourceError(StarburstError):
    """An AWS resource the cluster needs does not exist; nothing was created."""


class TaskFailedError(StarburstError, RuntimeError):
    """An ECS task stopped before it ran, or could not be launched."""
