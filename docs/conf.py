"""Sphinx configuration for heartbeat-core (built with ``make docs``, warnings as errors)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(HERE / "_ext")]

import heartbeat_core  # noqa: E402  (after the path set-up)

project = "heartbeat-core"
author = "the heartbeat-core authors"
copyright = "the heartbeat-core authors"
release = version = heartbeat_core.__version__

extensions = [
    "sphinx.ext.autodoc",
    "myst_parser",
    "hbdocs",  # docs/_ext/hbdocs.py: figures and tables generated from the code
]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "benchmarks-results.md", "README.md"]
templates_path: list[str] = []

html_theme = "furo"
html_title = f"heartbeat-core {release}"
html_static_path: list[str] = []
pygments_style = "sphinx"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"show-inheritance": True}

# Markdown is only included (the benchmarks results), never a page of its own.
myst_enable_extensions: list[str] = []
