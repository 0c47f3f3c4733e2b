"""Helpers for the chapters' notebooks: the setup cell and showing library source."""

from __future__ import annotations

import html
import inspect
from dataclasses import dataclass

import torch

from attnlab.core.runtime import Profile, choose_device, get_profile, seed_everything

# The banner keeps its own light colours in a dark page; so does its code.
_CODE = "<code style='color:#5a1f4f;background:#ffffffa0'>"


@dataclass(frozen=True)
class Setup:
    profile: Profile
    device: torch.device
    seed: int

    def banner_html(self) -> str:
        if self.profile.is_smoke:
            return (
                '<div class="attnlab-banner attnlab-smoke" '
                'style="border-left:6px '
                "solid #d9822b;background:#fff4e5;color:#1a1a1a;padding:0.6em "
                '1em;margin:0.5em 0">'
                "<strong>Smoke run.</strong> "
                "This page was executed "
                f"with {_CODE}ATTNLAB_PROFILE=smoke</code>: tiny data "
                "and budgets that only check the code runs. "
                "Its numbers are <em>not</em> the course's "
                "results.</div>"
            )
        return (
            '<div class="attnlab-banner" style="border-left:6px '
            "solid #2b7bd9;background:#eef5ff;color:#1a1a1a;padding:0.6em 1em;"
            'margin:0.5em 0">'
            f"Profile {_CODE}{self.profile.name}</code> · device "
            f"{_CODE}{self.device}</code> · seed {self.seed} · torch "
            f"{html.escape(torch.__version__)}</div>"
        )

    def _repr_html_(self) -> str:
        return self.banner_html()

    def __repr__(self) -> str:
        return (
            f"Setup(profile={self.profile.name!r}, device={str(self.device)!r}, "
            f"seed={self.seed})"
        )


def setup(seed: int = 0) -> Setup:
    """The first cell of every chapter: seed everything, pick the device and the
    profile.

    Displayed in a notebook, the result is a banner saying which profile ran,
    so a page executed in the smoke profile says so visibly. In IPython it also
    turns on inline figures, so a cell that ends with a ``Figure`` shows it, with a
    text alternative for readers who cannot see it (:func:`figure_png`).
    """
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = lambda: None  # noqa: E731
    shell = get_ipython()
    if shell is not None:
        shell.run_line_magic("matplotlib", "inline")
        from matplotlib.figure import Figure

        # After the inline backend's own formatter, which it replaces.
        shell.display_formatter.formatters["image/png"].for_type(Figure, figure_png)
    seed_everything(seed)
    return Setup(profile=get_profile(), device=choose_device(), seed=seed)


def figure_png(fig) -> bytes:
    """``fig`` as the PNG a notebook shows, as the inline backend draws it, with a text
    alternative (:func:`attnlab.view.plots.describe`) in its ``Description`` field: the
    book gives it to the figure as its ``alt`` text (``book/_ext/accessibility.py``)."""
    from IPython.core.pylabtools import print_figure

    from attnlab.view.plots import describe

    try:
        metadata = {"Description": describe(fig)}
    except ValueError:  # an empty figure: nothing to say
        metadata = {}
    return print_figure(fig, "png", bbox_inches="tight", metadata=metadata)


def show_source(obj) -> object:
    """Display the source of a library function or class, highlighted.

    The book shows library code with ``{literalinclude}``; this helper shows the
    same code where that directive is not rendered (Jupyter, Colab).
    """
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")
