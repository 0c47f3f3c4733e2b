"""The attention explorer: step through a translation and see where the decoder looked.

Every view is HTML computed in Python. On the website, where no kernel runs,
the views are precomputed and switched in the browser: the sentence menu, the
step slider and the temperature slider each select one view through
:func:`attnlab.view.widgets.linked_stack`. In Jupyter or Colab the same widgets
work, and a text box translates new sentences live.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

import ipywidgets as widgets
import torch

from attnlab.infer.inspection import (
    KIND,
    KINDS,
    Alignment,
    LayerAttention,
    with_temperature,
)
from attnlab.view.widgets import dropdown_views, linked_stack, live_box

TEMPERATURES = (0.25, 0.5, 1.0, 2.0, 4.0)


def _cell(weight: float) -> str:
    # White to dark blue; text turns white on dark cells.
    colour = f"rgba(33, 102, 172, {weight:.3f})"
    text = "#fff" if weight > 0.55 else "#222"
    return f"background:{colour};color:{text}"


def matrix_html(
    weights: torch.Tensor,
    *,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    current_row: int | None = None,
) -> str:
    """A labelled attention map as an HTML table: one row per query, one column per key,
    darker = more weight; ``current_row`` is outlined."""
    vertical = (
        "padding:2px 4px;font-weight:normal;writing-mode:vertical-rl;"
        "transform:rotate(180deg)"
    )
    head = "".join(f"<th style='{vertical}'>{escape(tok)}</th>" for tok in col_labels)
    body = []
    for t, (label, weights_t) in enumerate(zip(row_labels, weights.tolist())):
        current = t == current_row
        cells = "".join(
            f"<td style='{_cell(w)};width:22px;height:18px' title='{w:.2f}'></td>"
            for w in weights_t
        )
        style = "outline:3px solid #d9822b" if current else ""
        marker = "▶ " if current else ""
        weight = "bold" if current else "normal"
        body.append(
            f"<tr style='{style}'><th style='text-align:right;padding:0 6px;"
            f"font-weight:{weight}'>{marker}{escape(label)}</th>{cells}</tr>"
        )
    return (
        "<table style='border-collapse:separate;border-spacing:1px;margin-top:8px;"
        f"font-family:monospace;font-size:90%'><tr><th></th>{head}</tr>"
        f"{''.join(body)}</table>"
    )


def step_view(alignment: Alignment, step: int, temperature: float = 1.0) -> str:
    """HTML for one decoding step: the word produced, the source shaded by its weights,
    and the full heatmap with the current row marked."""
    weights = with_temperature(alignment.weights, temperature)
    row = weights[step].tolist()
    produced = escape(alignment.target[step])
    source = "".join(
        f"<span style='{_cell(w)};padding:3px 6px;margin:1px;border-radius:3px;"
        f"display:inline-block;text-align:center'>{escape(tok)}<br>"
        f"<small>{w:.2f}</small></span>"
        for tok, w in zip(alignment.source, row)
    )
    table = matrix_html(
        weights,
        row_labels=alignment.target,
        col_labels=alignment.source,
        current_row=step,
    )
    return (
        f"<div class='attnlab-step' data-step='{step}'><p>Step "
        f"{step + 1} of {len(alignment.target)}: the decoder "
        f"writes <b style='font-size:120%'>{produced}</b>, looking "
        f"at:</p><div style='font-family:monospace'>{source}</div>{table}<p "
        "style='font-size:85%;color:#555'>Rows: output words; columns: "
        "source words; darker = more weight (temperature "
        f"{temperature:g}).</p></div>"
    )


def alignment_panel(
    alignment: Alignment, temperatures: Sequence[float] = TEMPERATURES
) -> widgets.VBox:
    """Step and temperature sliders over precomputed views of one sentence."""
    steps = len(alignment.target)
    step = widgets.IntSlider(
        value=0,
        min=0,
        max=steps - 1,
        description="Step:",
        readout=False,
        continuous_update=True,
    )
    temperature = widgets.SelectionSlider(
        options=[f"{t:g}" for t in temperatures],
        value="1",
        description="Temperature:",
        style={"description_width": "initial"},
    )
    by_temperature = [
        linked_stack(
            [widgets.HTML(step_view(alignment, t, tau)) for t in range(steps)],
            step,
            "value",
        )
        for tau in temperatures
    ]
    return widgets.VBox(
        [
            widgets.HBox([step, temperature]),
            linked_stack(by_temperature, temperature, "index"),
        ]
    )


def _live_box(
    make_panel: Callable[[str], widgets.Widget], title: str
) -> list[widgets.Widget]:
    """A title and a text box whose sentence becomes a new panel (live kernel only)."""
    return [
        widgets.HTML(f"<hr>{title}"),
        live_box(
            make_panel,
            placeholder="type an English sentence and press Enter (live kernel)",
        ),
    ]


def _sentences(items) -> list[str]:
    return [" ".join(item.source[:-1]) for item in items]  # without <eos>


def attention_explorer(
    alignments: Sequence[Alignment], align_fn: Callable[[str], Alignment] | None = None
) -> widgets.VBox:
    """A sentence menu over precomputed panels; with ``align_fn`` (a live kernel), a
    text box that translates and explores a new sentence."""
    if not alignments:
        raise ValueError("the explorer needs at least one precomputed sentence")
    children = list(
        dropdown_views(
            _sentences(alignments),
            [alignment_panel(a) for a in alignments],
            description="Sentence:",
        )
    )
    if align_fn is not None:
        children += _live_box(
            lambda sentence: alignment_panel(align_fn(sentence)),
            "<b>Your own sentence</b> (needs a live kernel):",
        )
    return widgets.VBox(children)


# --- The Transformer: every layer, every head, three kinds of attention ---------------


def map_view(attention: LayerAttention, kind: str, layer: int, head: int | None) -> str:
    """HTML for one map: ``head`` None is the mean over heads."""
    stacked = attention.weights[kind][layer]  # (h, rows, cols)
    weights = stacked.mean(0) if head is None else stacked[head]
    rows, cols = attention.labels(kind)
    which = "mean of the heads" if head is None else f"head {head + 1}"
    axes = KIND[kind].axes
    tags = (
        f"data-kind='{escape(kind)}' data-layer='{layer + 1}' "
        f"data-head='{'mean' if head is None else head + 1}'"
    )
    return (
        f"<div class='attnlab-map' {tags}>"
        f"<p><b>{escape(kind.capitalize())}</b>, layer {layer + 1}, {which}</p>"
        f"{matrix_html(weights, row_labels=rows, col_labels=cols)}"
        f"<p style='font-size:85%;color:#555'>{escape(axes)} "
        "Darker = more weight.</p></div>"
    )


def _toggles(options: Sequence[str], description: str) -> widgets.ToggleButtons:
    return widgets.ToggleButtons(
        options=list(options),
        index=0,
        description=description,
        style={"description_width": "initial", "button_width": "auto"},
    )


def layer_panel(
    attention: LayerAttention,
    kind: widgets.ToggleButtons,
    layer: widgets.ToggleButtons,
    head: widgets.ToggleButtons,
) -> widgets.Widget:
    """Precomputed maps of one sentence, nested kind > layer > head, each level selected
    by its control."""

    def heads_of(name: str, i: int) -> widgets.Widget:
        heads = attention.weights[name][i].shape[0]
        return linked_stack(
            [
                widgets.HTML(map_view(attention, name, i, h))
                for h in [None, *range(heads)]
            ],
            head,
        )

    return linked_stack(
        [
            linked_stack(
                [heads_of(name, i) for i in range(len(attention.weights[name]))], layer
            )
            for name in KINDS
        ],
        kind,
    )


def layer_explorer(
    attentions: Sequence[LayerAttention],
    attend_fn: Callable[[str], LayerAttention] | None = None,
) -> widgets.VBox:
    """Choose a sentence, a kind of attention, a layer and a head (or their mean) and
    see the labelled map; all views are precomputed, so it works on the static website.
    With ``attend_fn`` (a live kernel), a text box explores a new sentence."""
    if not attentions:
        raise ValueError("the explorer needs at least one precomputed sentence")
    first = attentions[0].weights[KINDS[0]]
    layers, heads = len(first), first[0].shape[0]
    kind = _toggles(KINDS, "Attention:")
    layer = _toggles([f"layer {i + 1}" for i in range(layers)], "Layer:")
    head = _toggles(["mean", *(f"head {h + 1}" for h in range(heads))], "Head:")
    chooser, panels = dropdown_views(
        _sentences(attentions),
        [layer_panel(a, kind, layer, head) for a in attentions],
        description="Sentence:",
    )
    children = [chooser, kind, layer, head, panels]
    if attend_fn is not None:
        children += _live_box(
            lambda sentence: layer_panel(attend_fn(sentence), kind, layer, head),
            "<b>Your own sentence</b> (needs a "
            "live kernel; the buttons above choose "
            "its map too):",
        )
    return widgets.VBox(children)
