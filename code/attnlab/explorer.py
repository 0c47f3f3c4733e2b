"""The attention explorer: step through a translation and see where the decoder looked.

Every view is HTML computed in Python. On the website, where no kernel runs,
the views are precomputed and switched in the browser by ``jslink``: the
sentence menu, the step slider and the temperature slider each select a child
of a ``Stack``. In Jupyter or Colab the same widgets work, and a text box
translates new sentences live.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

import ipywidgets as widgets
import torch

from .decoding import translate

TEMPERATURES = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass
class Alignment:
    """A translated sentence and the attention weights that produced it."""

    source: list[str]             # source tokens, <eos> included
    target: list[str]             # output tokens, <eos> included
    weights: torch.Tensor         # (T, S): row t is where step t looked


def with_temperature(weights: torch.Tensor, temperature: float) -> torch.Tensor:
    """Re-normalise attention weights as if the softmax had been taken at ``temperature``.

    softmax(e / tau) is proportional to softmax(e) ** (1 / tau), so the weights
    alone suffice; zero weights (padding) stay zero.
    """
    sharpened = weights.clamp(min=0) ** (1.0 / temperature)
    return sharpened / sharpened.sum(-1, keepdim=True).clamp(min=1e-30)


def _cell(weight: float) -> str:
    # White to dark blue; text turns white on dark cells.
    colour = f"rgba(33, 102, 172, {weight:.3f})"
    text = "#fff" if weight > 0.55 else "#222"
    return f"background:{colour};color:{text}"


def step_view(alignment: Alignment, step: int, temperature: float = 1.0) -> str:
    """HTML for one decoding step: the word produced, the source shaded by its weights,
    and the full heatmap with the current row marked."""
    weights = with_temperature(alignment.weights, temperature)
    row = weights[step].tolist()
    produced = escape(alignment.target[step])
    source = "".join(
        f"<span style='{_cell(w)};padding:3px 6px;margin:1px;border-radius:3px;display:inline-block;"
        f"text-align:center'>{escape(tok)}<br><small>{w:.2f}</small></span>"
        for tok, w in zip(alignment.source, row))
    head = "".join(f"<th style='padding:2px 4px;font-weight:normal;writing-mode:vertical-rl;"
                   f"transform:rotate(180deg)'>{escape(tok)}</th>" for tok in alignment.source)
    body = []
    for t, (word, weights_t) in enumerate(zip(alignment.target, weights.tolist())):
        current = t == step
        cells = "".join(f"<td style='{_cell(w)};width:22px;height:18px' title='{w:.2f}'></td>"
                        for w in weights_t)
        style = "outline:3px solid #d9822b" if current else ""
        marker = "▶ " if current else ""
        body.append(f"<tr style='{style}'><th style='text-align:right;padding:0 6px;"
                    f"font-weight:{'bold' if current else 'normal'}'>{marker}{escape(word)}</th>"
                    f"{cells}</tr>")
    return (f"<div class='attnlab-step' data-step='{step}'>"
            f"<p>Step {step + 1} of {len(alignment.target)}: the decoder writes "
            f"<b style='font-size:120%'>{produced}</b>, looking at:</p>"
            f"<div style='font-family:monospace'>{source}</div>"
            f"<table style='border-collapse:separate;border-spacing:1px;margin-top:8px;"
            f"font-family:monospace;font-size:90%'><tr><th></th>{head}</tr>{''.join(body)}</table>"
            f"<p style='font-size:85%;color:#555'>Rows: output words; columns: source words; "
            f"darker = more weight (temperature {temperature:g}).</p></div>")


def alignment_panel(alignment: Alignment,
                    temperatures: Sequence[float] = TEMPERATURES) -> widgets.VBox:
    """Step and temperature sliders over precomputed views of one sentence."""
    steps = len(alignment.target)
    step = widgets.IntSlider(value=0, min=0, max=steps - 1, description="Step:",
                             readout=False, continuous_update=True)
    temperature = widgets.SelectionSlider(options=[f"{t:g}" for t in temperatures],
                                          value="1", description="Temperature:",
                                          style={"description_width": "initial"})
    by_temperature = []
    for tau in temperatures:
        views = widgets.Stack([widgets.HTML(step_view(alignment, t, tau)) for t in range(steps)],
                              selected_index=0)
        widgets.jslink((step, "value"), (views, "selected_index"))
        by_temperature.append(views)
    stack = widgets.Stack(by_temperature, selected_index=list(temperatures).index(1.0))
    widgets.jslink((temperature, "index"), (stack, "selected_index"))
    return widgets.VBox([widgets.HBox([step, temperature]), stack])


def attention_explorer(alignments: Sequence[Alignment],
                       align_fn: Callable[[str], Alignment] | None = None) -> widgets.VBox:
    """A sentence menu over precomputed panels; with ``align_fn`` (a live kernel), a text
    box that translates and explores a new sentence."""
    if not alignments:
        raise ValueError("the explorer needs at least one precomputed sentence")
    labels = [" ".join(a.source[:-1]) for a in alignments]
    chooser = widgets.Dropdown(options=labels, index=0, description="Sentence:",
                               layout=widgets.Layout(width="max-content"))
    panels = widgets.Stack([alignment_panel(a) for a in alignments], selected_index=0)
    widgets.jslink((chooser, "index"), (panels, "selected_index"))
    children = [chooser, panels]
    if align_fn is not None:
        text = widgets.Text(placeholder="type an English sentence and press Enter (live kernel)",
                            continuous_update=False, layout=widgets.Layout(width="36em"))
        live = widgets.VBox([])

        def update(change):
            try:
                live.children = [alignment_panel(align_fn(change["new"]))]
            except ValueError as error:
                live.children = [widgets.HTML(f"<p style='color:#a33'>{escape(str(error))}</p>")]

        text.observe(update, names="value")
        children += [widgets.HTML("<hr><b>Your own sentence</b> (needs a live kernel):"), text, live]
    return widgets.VBox(children)


def align(model, sentence: str, src_vocab, tgt_vocab, *, max_len: int = 30) -> Alignment:
    """Translate ``sentence`` greedily with an attention model and keep its weights."""
    result = translate(model, sentence, src_vocab, tgt_vocab, max_len=max_len, top_k=0)
    if result.attention is None:
        raise ValueError(f"{type(model).__name__} has no attention weights to explore")
    ended = len(result.probs) > len(result.tokens)      # the last step produced <eos>
    return Alignment(source=result.source + ["<eos>"],
                     target=result.tokens + (["<eos>"] if ended else []),
                     weights=result.attention)
