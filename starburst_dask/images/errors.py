"""Errors of image building and checking (part of the :class:`StarburstError` family)."""

from __future__ import annotations

from ..errors import ConfigurationError, StarburstError


class ImageVersionError(ConfigurationError):
    """The image's dask or distributed differs from the client's; raised before any task."""


class ImageArchitectureError(ConfigurationError):
    """The image lacks the platform of the cluster's architecture; raised before any task."""


class ImageBuildError(StarburstError, RuntimeError):
    """Building or pushing an image failed."""
