"""A Content-Security-Policy on every page: the browser runs only the site's own
scripts, the inline scripts the build wrote (each allowed by its hash) and the
WebAssembly of live translation, and connects to no other host.

GitHub Pages sets no response headers, so the policy is a ``<meta http-equiv>`` at the
top of each page's ``<head>``, written when the build has finished (after every other
extension has written its inline scripts). What it allows, and why:

* ``script-src 'self'``, the SHA-256 of each inline script of the page (the theme's
  mode switch, Sphinx's options, myst-nb's widget view markers are data, not scripts)
  and of each inline event handler of the site (``'unsafe-hashes'``: the theme's buttons;
  the site's, because the search page parses the pages it finds under its own policy);
  ``'wasm-unsafe-eval'`` for onnxruntime's WebAssembly; ``blob:`` for the runtime
  modules ``translate.mjs`` imports from the bytes it has checked against their hashes.
  A page with explorers also needs ``'unsafe-eval'``: the ipywidgets HTML manager
  compiles its JSON schemas with ``new Function`` as it loads (ajv). Pages without
  widgets do not get it.
* ``style-src 'self' 'unsafe-inline'``: the explorers' saved views and the widget
  manager write ``style`` attributes and ``<style>`` elements.
* ``img-src``/``font-src 'self' data:``: the theme and the widget manager inline small
  images and fonts; ``img-src``/``connect-src blob:``: the widget manager shows an
  explorer's saved images (chapter 4's positions) from blob: URLs it makes of them.
* ``default-src 'self'``, ``object-src 'none'``, ``base-uri 'self'``,
  ``form-action 'self'`` for everything else.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

# Script types a browser runs (an absent type, JavaScript, a module); others are data.
RUNS = {"", "text/javascript", "application/javascript", "module"}
SCRIPT = re.compile(r"<script(?P<attrs>[^>]*)>(?P<body>.*?)</script>", re.S | re.I)
TYPE = re.compile(r"""\btype\s*=\s*["']?([^"'\s>]+)""", re.I)
HANDLER = re.compile(r"""\son[a-z]+\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.I)
HEAD = re.compile(r"<head[^>]*>", re.I)
CHARSET = re.compile(r"\s*<meta\s+charset=[^>]*>", re.I)
MARK = 'http-equiv="Content-Security-Policy"'
WIDGET_VIEW = 'type="application/vnd.jupyter.widget-view+json"'

FIXED = (
    "default-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
)


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def inline_hashes(page: str) -> tuple[list[str], list[str]]:
    """The hashes of a page's inline scripts, and of its inline event handlers."""
    scripts = []
    for match in SCRIPT.finditer(page):
        attrs = match["attrs"]
        if re.search(r"\bsrc\s*=", attrs, re.I):
            continue
        kind = TYPE.search(attrs)
        if (kind[1].lower() if kind else "") in RUNS:
            scripts.append(_hash(match["body"]))
    handlers = [
        _hash(html.unescape(a if a is not None else b))
        for a, b in HANDLER.findall(SCRIPT.sub("", page))
    ]
    return sorted(set(scripts)), sorted(set(handlers))


def has_widgets(page: str) -> bool:
    """Whether the page shows saved widgets, which the ipywidgets HTML manager draws."""
    return WIDGET_VIEW in page


def policy(page: str, handlers: tuple[str, ...] = ()) -> str:
    """The page's policy. ``handlers``: the hashes of the inline event handlers of
    every page of the site, allowed on each page (the search page parses the pages it
    finds, and the browser checks their handlers against the search page's policy)."""
    scripts, own = inline_hashes(page)
    handlers = sorted(set(own) | set(handlers))
    script_src = ["'self'", "'wasm-unsafe-eval'", "blob:", *scripts]
    if has_widgets(page):
        # The widget manager compiles the JSON schemas of widget state into functions
        # when it loads (ajv: ``new Function``); without this it stops at once.
        script_src.insert(1, "'unsafe-eval'")
    if handlers:
        script_src += ["'unsafe-hashes'", *handlers]
    return "; ".join(["script-src " + " ".join(script_src), *FIXED])


def add_policy(page: str, handlers: tuple[str, ...] = ()) -> str:
    """The page with its policy at the top of its ``<head>`` (after ``<meta charset>``,
    which must stay within the page's first kilobyte), before any script."""
    if MARK in page:
        raise ValueError("the page already has a Content-Security-Policy")
    head = HEAD.search(page)
    if head is None:
        raise ValueError("the page has no <head>")
    at = head.end()
    charset = CHARSET.match(page, at)
    if charset:
        at = charset.end()
    meta = f'\n<meta {MARK} content="{policy(page, handlers)}">'
    return page[:at] + meta + page[at:]


def site_handlers(pages: list[str]) -> tuple[str, ...]:
    """The hashes of the inline event handlers of all ``pages``."""
    return tuple(sorted({h for page in pages for h in inline_hashes(page)[1]}))


def _write_policies(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    pages = {}
    for path in sorted(Path(app.outdir).rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        if HEAD.search(text) and MARK not in text:
            pages[path] = text
    handlers = site_handlers(list(pages.values()))
    for path, text in pages.items():
        path.write_text(add_policy(text, handlers), encoding="utf-8")
    logger.info("content_policy: a Content-Security-Policy on %d page(s)", len(pages))


def setup(app: Sphinx) -> dict:
    # Last of the build-finished handlers: after every other one has written its pages.
    app.connect("build-finished", _write_policies, priority=990)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
