"""Sphinx configuration: the Markdown pages of docs/ (MyST) with furo, plus autodoc."""

from flask_stripe_billing import __version__

project = "Flask-Stripe-Billing"
author = "Flask-Stripe-Billing contributors"
copyright = author
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

root_doc = "index"
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]

# MyST: the pages are GitHub Markdown; give headings anchors so that links like
# events.md#ordering-the-watermark work on the site as they do on GitHub.
myst_heading_anchors = 4

# autodoc: signatures as written in the source, members in source order.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autoclass_content = "class"

html_theme = "furo"
html_title = f"Flask-Stripe-Billing {version}"
