"""Status lines: what the library tells its user, through :mod:`logging`.

A cluster's status lines ("Launching ...", the quota plan, "Closed ...: cost") are INFO
records of the ``starburst_dask.cluster`` logger; warnings and errors come from the
modules' own loggers, all under ``starburst_dask``. Nothing is printed to stdout.

Where the application has not configured logging, the lines still reach the user, as
distributed's do: :func:`show` gives the ``starburst_dask`` logger a handler that writes
to stderr (above a progress bar, if one is drawn) and steps aside as soon as the root
logger has a handler of its own (``logging.basicConfig``, pytest's capture), so no
line shows twice.
"""

from __future__ import annotations

import logging
import sys

#: The logger of every cluster's status lines.
cluster = logging.getLogger("starburst_dask.cluster")
_package = logging.getLogger("starburst_dask")


class FallbackHandler(logging.Handler):
    """Writes records to stderr while the root logger has no handler (the application
    left logging unconfigured); then the root's handlers show them instead."""

    def handle(self, record: logging.LogRecord) -> bool:
        if logging.getLogger().handlers:
            return False
        return bool(super().handle(record))

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            # tqdm.write keeps a progress bar being drawn below the line.
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging's own contract: never raise
            self.handleError(record)


def show() -> None:
    """Make the package's INFO records visible (idempotent): its level INFO unless the
    application set one, and the fallback handler unless it is there."""
    if _package.level == logging.NOTSET:
        _package.setLevel(logging.INFO)
    if not any(isinstance(h, FallbackHandler) for h in _package.handlers):
        _package.addHandler(FallbackHandler())
