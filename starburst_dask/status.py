"""Status lines: what the library tells its user, through :mod:`logging`.

A cluster's status lines ("Launching ...", the quota plan, "Closed ...: cost") are INFO
records of the ``starburst_dask.cluster`` logger; warnings and errors come from the
modules' own loggers, all under ``starburst_dask``. Nothing is printed to stdout.

Where the application has not configured logging, the lines still reach the user, as
distributed's do: :func:`show` gives the ``starburst_dask`` logger a handler that writes
to stderr (above a progress bar, if one is drawn) and steps aside as soon as another
handler would show them (the root logger's: ``logging.basicConfig``, pytest's capture;
or the ``starburst-dask`` command's own :class:`StderrHandler`), so no line shows twice.
"""

from __future__ import annotations

import logging
import sys

#: The logger of every cluster's status lines.
cluster = logging.getLogger("starburst_dask.cluster")
_package = logging.getLogger("starburst_dask")


class StderrHandler(logging.Handler):
    """Writes records to stderr (``sys.stderr`` as it is then), above a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            # tqdm.write keeps a progress bar being drawn below the line.
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging's own contract: never raise
            self.handleError(record)


class FallbackHandler(StderrHandler):
    """A :class:`StderrHandler` while no other handler shows the package's records (the
    root logger's, or another on the package's logger, like the command line's)."""

    def handle(self, record: logging.LogRecord) -> bool:
        others = [h for h in _package.handlers if h is not self]
        if logging.getLogger().handlers or others:
            return False
        return bool(super().handle(record))


def show() -> None:
    """Make the package's INFO records visible (idempotent): its level INFO unless the
    application set one, and the fallback handler unless it is there."""
    if _package.level == logging.NOTSET:
        _package.setLevel(logging.INFO)
    if not any(isinstance(h, FallbackHandler) for h in _package.handlers):
        _package.addHandler(FallbackHandler())
