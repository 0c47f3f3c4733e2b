"""Helpers for the chapters' notebooks: the setup cell and showing library source."""

from __future__ import annotations

import html
import inspect
from dataclasses import dataclass

import torch

from .runtime import Profile, choose_device, get_profile, seed_everything


@dataclass(frozen=True)
class Setup:
    profile: Profile
    device: torch.device
    seed: int

    def banner_html(self) -> str:
        if self.profile.is_smoke:
            return ('<div class="attnlab-banner attnlab-smoke" '
                    'style="border-left:6px '
                    'solid #d9822b;background:#fff4e5;padding:0.6em '
                    '1em;margin:0.5em 0">' "<strong>Smoke run.</strong> "
                    "This page was executed "
                    "with <code>ATTNLAB_PROFILE=smoke</code>: tiny data "
                    "and budgets that only check the code runs. "
                    "Its numbers are <em>not</em> the course's "
                    "results.</div>")
        return ('<div class="attnlab-banner" style="border-left:6px '
                'solid #2b7bd9;background:#eef5ff;padding:0.6em 1em;margin:0.5em '
                '0">' f"Profile <code>{self.profile.name}</code> · device "
                f"<code>{self.device}</code> · seed {self.seed} · torch "
                f"{html.escape(torch.__version__)}</div>")

    def _repr_html_(self) -> str:
        return self.banner_html()

    def __repr__(self) -> str:
        return (f"Setup(profile={self.profile.name!r}, device={str(self.device)!r}, "
                f"seed={self.seed})")


def setup(seed: int = 0) -> Setup:
    """The first cell of every chapter: seed everything, pick the device and the
    profile.

    Displayed in a notebook, the result is a banner saying which profile ran,
    so a page executed in the smoke profile says so visibly. In IPython it also
    turns on inline figures, so a cell that ends with a ``Figure`` shows it.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = lambda: None  # noqa: E731
    shell = get_ipython()
    if shell is not None:
        shell.run_line_magic("matplotlib", "inline")
    seed_everything(seed)
    return Setup(profile=get_profile(), device=choose_device(), seed=seed)


def show_source(obj) -> object:
    """Display the source of a library function or class, highlighted.

    The book shows library code with ``{literalinclude}``; this helper shows the
    same code where that directive is not rendered (Jupyter, Colab).
    """
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")
