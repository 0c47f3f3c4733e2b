"""Keep the executed notebooks as the kernel wrote them when myst-nb merges streams.

With ``nb_merge_streams`` (``_config.yml``), myst-nb renders a cell's stream outputs as
one (``myst_nb.core.render``'s ``coalesce_streams``), but its merge (myst-nb 1.4.0)
writes into the first output of the notebook it was given: that notebook, saved in
``_build/jupyter_execute`` for nbval's replay (tests/replay_kernel.py), then holds the
merged text *and* the outputs merged into it. It shows only when the kernel sent a cell's
printing in several messages, which a loaded machine does: chapter 4's check cell was
replayed with a line twice. This extension gives the merge copies of the outputs, so the
page shows the same merged text and the saved notebook keeps what the kernel sent.
"""

from __future__ import annotations

import copy

from myst_nb.core import render
from sphinx.application import Sphinx

_UPSTREAM = render.coalesce_streams


def coalesce_copies(outputs: list) -> list:
    """myst-nb's merge of ``outputs``, done on copies of them."""
    return _UPSTREAM([copy.copy(output) for output in outputs or []])


def setup(app: Sphinx) -> dict:
    render.coalesce_streams = coalesce_copies
    return {"parallel_read_safe": True, "parallel_write_safe": True}
