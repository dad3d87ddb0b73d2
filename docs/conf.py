"""Sphinx configuration of the docs site: MyST Markdown pages, built strict.

Build: `python -m sphinx -W --keep-going -n -b html docs build/docs` (what
`tests/docs/test_docs_site.py` runs). Headings get GitHub-style anchors, so a link such as
`alerts.md#dlibatchjobdied` works both on GitHub and in the built site, and a link to a page
or anchor that does not exist fails the build.
"""

from __future__ import annotations

project = "dli-batch-monitor"
author = "dli-batch-monitor developers"
copyright = "2026, dli-batch-monitor developers"

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]
suppress_warnings: list[str] = []

html_theme = "alabaster"
html_title = "dli-batch-monitor"
html_baseurl = "https://ORG.github.io/dli-batch-monitor/"
"""Where the site is published; the PrometheusRule's runbook URLs start with it."""
html_static_path: list[str] = []
html_show_sourcelink = False
html_theme_options = {
    "description": "Huawei Cloud DLI batch jobs, watched: alerts exactly once.",
    "fixed_sidebar": True,
    "show_relbars": True,
    "page_width": "1180px",
    "sidebar_width": "240px",
}
html_copy_source = False
