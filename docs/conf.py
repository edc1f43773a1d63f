"""Sphinx configuration of the pkd-lessons site (``make docs``).

The site is built from the sources only: the lessons are the notebooks ``make lessons`` executed
(never re-executed here), the API pages come from the docstrings, the guides from the Markdown files
of the repository. ``_ext/pkd_site.py`` generates the lesson, API and benchmark pages before Sphinx
reads them.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import pkd_lessons  # noqa: E402
from pkd_lessons.project import home  # noqa: E402

project = "pkd-lessons"
author = "the pkd-lessons authors"
copyright = "the pkd-lessons authors, MIT licence"  # noqa: A001 (Sphinx's name)
version = release = pkd_lessons.__version__

extensions = [
    "myst_nb",  # Markdown and executed notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # Google-style Args/Returns/Raises
    "sphinx.ext.viewcode",
    "sphinx-mathjax-offline",  # MathJax 3 served from the site itself: it must read offline
    "pkd_site",
]

# The lessons are shown as `make lessons` executed them; the site never re-trains.
nb_execution_mode = "off"
# Widgets would need require.js and the widget manager from a CDN; the viewer's display bundle carries
# a PNG of its view, which the site shows instead.
nb_ipywidgets_js: dict = {}
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_merge_streams = True
# The lessons display their tables as Markdown outputs: parse them as MyST (CommonMark has no tables).
nb_render_markdown_format = "myst"

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True

# A reference to anything of pkd_lessons that does not resolve fails the build; references to other
# libraries (torch, numpy, ...) are not checked, as the site links no external inventories (offline).
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!pkd_lessons\.).*")]

exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_theme = "sphinx_book_theme"
html_title = f"pkd-lessons {release}"
html_favicon = "_static/favicon.svg"
# A mode set from the start: without it the theme logs an error on a reader's first visit.
html_context = {"default_mode": "light"}
html_theme_options = {
    "repository_url": home(),  # [project.urls] of pyproject.toml (pkd_lessons.project)
    "repository_branch": "main",
    "path_to_docs": "docs",
    "use_repository_button": True,
    "show_navbar_depth": 1,
    "show_toc_level": 2,
}
html_last_updated_fmt = None
