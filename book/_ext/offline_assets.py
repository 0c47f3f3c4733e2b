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
MATHJAX = "vendor/mathjax/tex-chtml.js"

# ipywidgets 8 typesets widget labels by calling MathJax 2's
# MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]). MathJax 3 has no Hub:
# this gives it one that forwards to MathJax 3's typesetPromise, queueing the
# elements until MathJax has started.
MATHJAX2_HUB_SHIM = """
(function () {
  var pending = [];
  function flush() {
    var mj = window.MathJax;
    if (!mj || typeof mj.typesetPromise !== "function" || pending.length === 0) { return; }
    mj.typesetPromise(pending.splice(0)).catch(function (err) { console.warn("MathJax:", err); });
  }
  function hub() {
    return { Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (Array.isArray(job) && job[0] === "Typeset" && job[2]) { pending.push(job[2]); }
      }
      flush();
    } };
  }
  window.MathJax = Object.assign(window.MathJax || {}, {
    Hub: hub(),
    startup: { ready: function () {
      window.MathJax.startup.defaultReady();
      window.MathJax.Hub = hub();
      flush();
    } }
  });
})();
"""


def _configure(app: Sphinx, config: Config) -> None:
    if not (STATIC / WIDGETS).is_file() or not (STATIC / MATHJAX).is_file():
        logger.info("offline_assets: %s is not populated (run `make vendor`); widgets and "
                    "MathJax will load from CDNs", STATIC)
        return
    config.html_static_path = [*config.html_static_path, str(STATIC)]
    config.nb_ipywidgets_js = {WIDGETS: {}}
    config.mathjax_path = MATHJAX


def _add_shim(app: Sphinx) -> None:
    if app.builder.format == "html":
        app.add_js_file(None, body=MATHJAX2_HUB_SHIM, priority=400)


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _configure)
    app.connect("builder-inited", _add_shim)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
