"""Sphinx configuration: the API reference from the numpydoc docstrings, and the Markdown docs.

Build: ``pip install -e ".[docs]"`` then ``sphinx-build -W -b html docs docs/_build``.
"""

from __future__ import annotations

import starburst_dask

project = "starburst-dask"
author = "the starburst-dask authors"
copyright = "the starburst-dask authors"
release = version = starburst_dask.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# The members listed in api.rst, in source order; no autosummary tables.
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc sections carry the types
autodoc_preserve_defaults = True  # defaults as written, not their reprs
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Headings get anchors so the Markdown pages' links to sections resolve.
myst_heading_anchors = 3

# Links to other projects' references need the network: off, so the build is offline.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

html_theme = "alabaster"
html_static_path: list[str] = []
