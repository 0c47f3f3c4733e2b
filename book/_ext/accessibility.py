"""What the theme and the notebooks leave out for readers who use a keyboard or a
screen reader, added to every page (tests/test_accessibility.py runs axe-core on them).

* A notebook's figure gets the text alternative its PNG carries (the ``Description``
  that :func:`attnlab.view.notebook.figure_png` writes from :func:`attnlab.view.plots.describe`)
  as its ``alt`` text, unless the cell gives one (myst-nb's ``image: alt:`` metadata).
  Without it the page would say the figure's file name.
* ``static/a11y.js`` names what the theme and the widgets leave unnamed or misnamed
  (the sidebar's expand buttons, sliders, the search button, the toggles of hidden
  outputs), gives an image widget's figure the text alternative inside its PNG, hides
  icon glyphs from screen readers, and lets a keyboard reach outputs and display
  equations that scroll; ``static/a11y.css`` darkens links where they fall short of
  WCAG's 4.5:1 contrast.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx

STATIC = Path(__file__).resolve().parent / "static"


def _configure(app: Sphinx, config) -> None:
    if str(STATIC) not in config.html_static_path:
        config.html_static_path = [*config.html_static_path, str(STATIC)]


def _add_files(app: Sphinx) -> None:
    if app.builder.format == "html":
        app.add_js_file("a11y.js", loading_method="defer")
        app.add_css_file("a11y.css", priority=900)


def _alt_from_png(app: Sphinx, doctree: nodes.document) -> None:
    from PIL import Image

    for node in doctree.findall(nodes.image):
        uri = node.get("uri", "")
        if node.get("alt") or not uri.endswith(".png") or "://" in uri:
            continue
        # Sphinx's image collector has already made the path relative to the source
        # folder (its "candidates"); otherwise it is relative to the document.
        candidate = node.get("candidates", {}).get("*")
        path = (
            Path(app.srcdir) / candidate
            if candidate
            else Path(app.env.relfn2path(uri, app.env.docname)[1])
        )
        if not path.is_file():
            continue
        with Image.open(path) as image:
            description = image.text.get("Description", "").strip()
        if description:
            node["alt"] = description


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _configure)
    app.connect("builder-inited", _add_files)
    app.connect("doctree-read", _alt_from_png)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
