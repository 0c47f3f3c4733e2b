"""Serve the front-end files the book needs from the site itself; typeset its equations.

By default a Jupyter Book page loads the ipywidgets HTML manager from jsDelivr
and typesets its equations in the reader's browser with MathJax from a CDN: a
page read offline shows blank widgets and raw TeX, and a phone spends seconds
of its main thread on the equations before the page settles. ``make vendor``
installs pinned copies (``book/vendor/package.json``) into
``book/vendor/static/vendor``; when they are there, this extension serves them
from ``_static/vendor``, points myst-nb at the widget manager, and has
sphinxcontrib-katex typeset every equation while the book is built (Node.js
running ``book/vendor/node_modules/katex``): a page carries its equations as
HTML with hidden MathML for screen readers, and needs KaTeX's style sheet and
fonts, no script. Without them (no Node.js), a local build still works: widgets
and KaTeX load from CDNs and KaTeX typesets in the browser; with ``CI`` set (the
tests, the published site) that is an error instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinxcontrib import katex

logger = logging.getLogger(__name__)

VENDOR = Path(__file__).resolve().parents[1] / "vendor"
STATIC = VENDOR / "static"
WIDGETS = "vendor/html-manager/embed.js"
KATEX_CSS = "vendor/katex/katex.min.css"
# The KaTeX that typesets at build time: the same release as the style sheet served.
KATEX_JS = VENDOR / "node_modules" / "katex" / "dist" / "katex.min.js"
OWN_STATIC = Path(__file__).resolve().parent / "static"
# How long the KaTeX server may take to answer: Node.js starting on a busy 2-core machine
# (a test run builds the book beside other work) has taken more than the default 5 s.
KATEX_STARTUP_S = 60.0


def vendored() -> bool:
    """Whether ``make vendor`` has installed what the offline site and its equations need."""
    return all(
        path.is_file() for path in (STATIC / WIDGETS, STATIC / KATEX_CSS, KATEX_JS)
    )


def _configure(app: Sphinx, config: Config) -> None:
    config.html_math_renderer = "katex"
    if not vendored() or shutil.which("node") is None:
        if os.environ.get("CI"):
            raise ExtensionError(
                f"offline_assets: {STATIC} is not populated or Node.js "
                "is missing, and CI is set: run `make vendor` (a site "
                "for readers must not load its files from CDNs)"
            )
        logger.info(
            "offline_assets: %s is not populated or Node.js is missing (run `make "
            "vendor`); widgets and KaTeX will load from CDNs",
            STATIC,
        )
        return
    config.html_static_path = [*config.html_static_path, str(STATIC), str(OWN_STATIC)]
    config.nb_ipywidgets_js = {WIDGETS: {}}
    config.katex_prerender = True
    config.katex_js_path = str(KATEX_JS)
    config.katex_css_path = KATEX_CSS


def start_katex_server(
    server_class: type, rundir: Path, timeout: float
) -> tuple[subprocess.Popen, socket.socket]:
    """Start sphinxcontrib-katex's render server and connect to it, or fail and stop it.

    Stands in for ``KaTeXServer.start_server_process`` (sphinxcontrib-katex 0.9.11),
    which has two faults that show on a loaded machine: it connects as soon as the
    socket file exists, but Node.js creates the file (bind) a moment before it accepts
    connections (listen), so the connection can be refused and the build fails; and when
    it fails it leaves the server running, holding the build's standard error open, so
    whoever waits for the build's output waits forever. This one retries a refused
    connection until ``timeout`` and stops the server before raising.
    """
    path = rundir / "katex.sock"
    process = subprocess.Popen(
        server_class.build_command(socket=path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=rundir,
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                raise ExtensionError(
                    f"offline_assets: the KaTeX server (Node.js) exited with status "
                    f"{process.returncode} before it answered"
                )
            if path.is_socket():
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(max(deadline - time.monotonic(), 0.001))
                    sock.connect(str(path))
                    sock.settimeout(None)
                    return process, sock
                except (ConnectionRefusedError, FileNotFoundError):
                    sock.close()  # bound, not listening yet: try again
                except BaseException:
                    sock.close()
                    raise
            if time.monotonic() > deadline:
                raise ExtensionError(
                    f"offline_assets: the KaTeX server (Node.js) did not answer within "
                    f"{timeout:g} s"
                )
            time.sleep(0.01)
    except BaseException:
        process.kill()
        process.wait()
        raise


def _check_equations(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    # Typeset at build time, an equation KaTeX cannot read becomes red source text in
    # the page (sphinxcontrib-katex asks it not to throw): make that a build warning.
    body = context.get("body") or ""
    if app.config.katex_prerender and 'class="katex-error"' in body:
        count = body.count('class="katex-error"')
        logger.warning(
            "%s: KaTeX could not typeset %d equation(s); search the page for "
            "katex-error",
            pagename,
            count,
            location=pagename,
        )


def _clean_page(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
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
        key = (
            ("inline", attributes["body"])
            if attributes.get("body")
            else (
                str(getattr(script, "filename", script)),
                tuple(sorted(attributes.items())),
            )
        )
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinxcontrib.katex")
    katex.STARTUP_TIMEOUT = KATEX_STARTUP_S
    katex.KaTeXServer.start_server_process = classmethod(start_katex_server)
    app.connect("config-inited", _configure)
    app.connect("html-page-context", _check_equations)
    app.connect("html-page-context", _clean_page, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
