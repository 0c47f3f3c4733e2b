"""Each chapter's budget note, written when the book is built, from the chapter times
``benchmarks/bench_chapters.py`` committed (``benchmarks/results/chapters-*.json``).

A chapter places it with a ``budget`` directive, whose content is what Jupyter and Colab
show instead::

    :::{budget}
    How long this chapter takes on a laptop's CPU and on a GPU: measured, on the website.
    :::

On the website the directive becomes the table ``book/notebooks.py``'s ``budget_note``
draws, so no generated text is written into a notebook, and none can drift from the
measurements. A page is rebuilt when a results file changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

BOOK = Path(__file__).resolve().parents[1]
if str(BOOK) not in sys.path:
    sys.path.insert(0, str(BOOK))
import notebooks  # noqa: E402  (book/notebooks.py)


class Budget(SphinxDirective):
    """``:::{budget}``: the budget note of the chapter it is in."""

    has_content = True

    def run(self):
        for path in sorted(notebooks.RESULTS.glob("chapters-*.json")):
            self.env.note_dependency(str(path))
        try:
            text = notebooks.budget_note(Path(self.env.docname).name)
        except ValueError as error:
            raise self.error(f"no budget note for {self.env.docname}: {error}")
        return self.parse_text_to_nodes(text)


def setup(app: Sphinx) -> dict:
    app.add_directive("budget", Budget)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
