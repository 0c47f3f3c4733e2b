"""Serve the front-end files the book needs from the site itself.

By default a Jupyter Book page loads the ipywidgets HTML manager from jsDelivr
and MathJax from a CDN, so a page read offline shows blank widgets and raw
TeX. ``make vendor`` installs pinned copies (``book/vendor/package.json``) into
``book/vendor/static/vendor``; when they are there, this extension serves them
from ``_static/vendor`` and points myst-nb and Sphinx at them. Without them
(no Node.js), the book still builds and falls back to the CDNs.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parents[1] / "vendor" / "static"
WIDGETS = "vendor/html-manager/embed.js"
MATHJAX = "vendor/mathjax/startup.js"
# MathJax's components as its combined tex-chtml.js holds them, less its contextual menu
# (108 kB of its 263 kB gzipped, on every page with an equation); the hidden MathML that
# screen readers read, which the menu would otherwise load, is loaded directly.
MATHJAX_COMPONENTS = ["input/tex", "output/chtml", "a11y/assistive-mml"]

SHIM = "mathjax2-hub-shim.js"  # in book/_ext/static: see the comment in that file
OWN_STATIC = Path(__file__).resolve().parent / "static"


def _configure(app: Sphinx, config: Config) -> None:
    if not (STATIC / WIDGETS).is_file() or not (STATIC / MATHJAX).is_file():
        logger.info("offline_assets: %s is not populated (run `make vendor`); widgets and "
                    "MathJax will load from CDNs", STATIC)
        return
    config.html_static_path = [*config.html_static_path, str(STATIC), str(OWN_STATIC)]
    config.nb_ipywidgets_js = {WIDGETS: {}}
    config.mathjax_path = MATHJAX
    mathjax = dict(config.mathjax3_config or {})
    mathjax["loader"] = {**mathjax.get("loader", {}), "load": MATHJAX_COMPONENTS}
    config.mathjax3_config = mathjax


def _add_shim(app: Sphinx) -> None:
    # Deferred scripts run in document order: this one before MathJax (priority 500),
    # and after every inline script, including the MathJax configuration.
    if app.builder.format == "html" and app.config.mathjax_path == MATHJAX:
        app.add_js_file(SHIM, loading_method="defer", priority=490)


def _clean_page(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Remove two console errors every page would otherwise log in the browser.

    sphinx-thebe registers its inline configuration twice under Jupyter Book
    (the second ``const`` declaration is an error), and sphinx-book-theme leaves
    the colour mode empty, which the theme's script reports on a first visit.
    """
    if not context.get("default_mode"):
        context["default_mode"] = "auto"
    scripts = context.get("script_files") or []
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {})
        # Inline scripts are told apart by their body (the copies differ in filename: None vs "").
        key = ("inline", attributes["body"]) if attributes.get("body") else (
            str(getattr(script, "filename", script)), tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _configure)
    app.connect("builder-inited", _add_shim)
    app.connect("html-page-context", _clean_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
