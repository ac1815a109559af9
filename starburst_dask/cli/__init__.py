"""The ``starburst-dask`` command: cluster commands (:mod:`.main`), account ones (:mod:`.admin`)."""

from .main import main

__all__ = ["main"]
