"""The attention explorer: step through a translation and see where the decoder looked.

Every view is HTML computed in Python. On the website, where no kernel runs,
the views are precomputed and switched in the browser: the sentence menu, the
step slider and the temperature slider each select one view through
:func:`attnlab.widgets.linked_stack`. In Jupyter or Colab the same widgets
work, and a text box translates new sentences live.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

import ipywidgets as widgets
import torch

from .decoding import translate
from .widgets import linked_stack

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


def matrix_html(weights: torch.Tensor, *, row_labels: Sequence[str], col_labels: Sequence[str],
                current_row: int | None = None) -> str:
    """A labelled attention map as an HTML table: one row per query, one column per key,
    darker = more weight; ``current_row`` is outlined."""
    head = "".join(f"<th style='padding:2px 4px;font-weight:normal;writing-mode:vertical-rl;"
                   f"transform:rotate(180deg)'>{escape(tok)}</th>" for tok in col_labels)
    body = []
    for t, (label, weights_t) in enumerate(zip(row_labels, weights.tolist())):
        current = t == current_row
        cells = "".join(f"<td style='{_cell(w)};width:22px;height:18px' title='{w:.2f}'></td>"
                        for w in weights_t)
        style = "outline:3px solid #d9822b" if current else ""
        marker = "▶ " if current else ""
        body.append(f"<tr style='{style}'><th style='text-align:right;padding:0 6px;"
                    f"font-weight:{'bold' if current else 'normal'}'>{marker}{escape(label)}</th>"
                    f"{cells}</tr>")
    return (f"<table style='border-collapse:separate;border-spacing:1px;margin-top:8px;"
            f"font-family:monospace;font-size:90%'><tr><th></th>{head}</tr>{''.join(body)}</table>")


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
    table = matrix_html(weights, row_labels=alignment.target, col_labels=alignment.source,
                        current_row=step)
    return (f"<div class='attnlab-step' data-step='{step}'>"
            f"<p>Step {step + 1} of {len(alignment.target)}: the decoder writes "
            f"<b style='font-size:120%'>{produced}</b>, looking at:</p>"
            f"<div style='font-family:monospace'>{source}</div>{table}"
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
    by_temperature = [linked_stack([widgets.HTML(step_view(alignment, t, tau))
                                    for t in range(steps)], step, "value")
                      for tau in temperatures]
    return widgets.VBox([widgets.HBox([step, temperature]),
                         linked_stack(by_temperature, temperature, "index")])


def _sentence_menu(labels: Sequence[str], panels: Sequence[widgets.Widget]):
    """A dropdown of sentences and their precomputed panels, the one chosen shown."""
    chooser = widgets.Dropdown(options=list(labels), index=0, description="Sentence:",
                               layout=widgets.Layout(width="max-content"))
    return chooser, linked_stack(panels, chooser, "index")


def _live_box(make_panel: Callable[[str], widgets.Widget], title: str) -> list[widgets.Widget]:
    """A text box whose sentence becomes a new panel when Enter is pressed (live kernel only);
    bad input (an empty sentence) shows its error instead."""
    text = widgets.Text(placeholder="type an English sentence and press Enter (live kernel)",
                        continuous_update=False, layout=widgets.Layout(width="36em"))
    live = widgets.VBox([])

    def update(change):
        try:
            live.children = [make_panel(change["new"])]
        except ValueError as error:
            live.children = [widgets.HTML(f"<p style='color:#a33'>{escape(str(error))}</p>")]

    text.observe(update, names="value")
    return [widgets.HTML(f"<hr>{title}"), text, live]


def attention_explorer(alignments: Sequence[Alignment],
                       align_fn: Callable[[str], Alignment] | None = None) -> widgets.VBox:
    """A sentence menu over precomputed panels; with ``align_fn`` (a live kernel), a text
    box that translates and explores a new sentence."""
    if not alignments:
        raise ValueError("the explorer needs at least one precomputed sentence")
    children = list(_sentence_menu([" ".join(a.source[:-1]) for a in alignments],
                                   [alignment_panel(a) for a in alignments]))
    if align_fn is not None:
        children += _live_box(lambda sentence: alignment_panel(align_fn(sentence)),
                              "<b>Your own sentence</b> (needs a live kernel):")
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


# --- The Transformer: every layer, every head, three kinds of attention ---------------------

KINDS = ("encoder self-attention", "decoder self-attention", "cross-attention")


@dataclass
class LayerAttention:
    """A sentence translated by a Transformer, and the weights of every layer and head.

    ``weights[kind][layer]`` is (H, queries, keys): encoder self-attention is
    (H, S, S) over the source; decoder self-attention (H, T, T) over the
    decoder's inputs (``<bos>`` and the words already written); cross-attention
    (H, T, S) from each output step to the source.
    """

    source: list[str]             # source tokens, <eos> included
    target: list[str]             # output tokens, <eos> included if produced
    weights: dict[str, list[torch.Tensor]]

    @property
    def inputs(self) -> list[str]:
        """What the decoder reads at each step: <bos>, then the words already written."""
        return ["<bos>"] + self.target[:-1]

    def labels(self, kind: str) -> tuple[list[str], list[str]]:
        """Row (query) and column (key) labels of a map of ``kind``."""
        if kind == KINDS[0]:
            return self.source, self.source
        if kind == KINDS[1]:
            return self.target, self.inputs
        if kind == KINDS[2]:
            return self.target, self.source
        raise ValueError(f"unknown kind of attention {kind!r}; choose one of {KINDS}")


def replay_inputs(source: Sequence[str], target: Sequence[str], src_vocab, tgt_vocab,
                  device) -> dict[str, torch.Tensor]:
    """The model inputs that replay a translation by teacher forcing, a batch of one: the
    source (``source`` ends with ``<eos>``) and the decoder inputs (``<bos>``, then the output
    without its last token)."""
    src = src_vocab.encode(source[:-1]) + [src_vocab.eos_id]
    tgt_in = [tgt_vocab.bos_id] + tgt_vocab.encode(target[:-1])
    return {"src": torch.tensor([src], device=device),
            "src_len": torch.tensor([len(src)], device=device),
            "tgt_in": torch.tensor([tgt_in], device=device)}


@torch.no_grad()
def layer_attention(model, sentence: str, src_vocab, tgt_vocab, *,
                    max_len: int = 30) -> LayerAttention:
    """Translate ``sentence`` greedily with a Transformer, then run the decoder once more on
    its own output (teacher-forced) to read every layer's weights."""
    translation = align(model, sentence, src_vocab, tgt_vocab, max_len=max_len)
    model.eval()
    _, weights = model(**replay_inputs(translation.source, translation.target, src_vocab,
                                       tgt_vocab, next(model.parameters()).device),
                       need_weights=True)
    return LayerAttention(
        source=translation.source, target=translation.target,
        weights={KINDS[0]: [w[0].cpu() for w in weights["encoder"]],
                 KINDS[1]: [w["self"][0].cpu() for w in weights["decoder"]],
                 KINDS[2]: [w["cross"][0].cpu() for w in weights["decoder"]]})


def map_view(attention: LayerAttention, kind: str, layer: int, head: int | None) -> str:
    """HTML for one map: ``head`` None is the mean over heads."""
    stacked = attention.weights[kind][layer]                                    # (H, rows, cols)
    weights = stacked.mean(0) if head is None else stacked[head]
    rows, cols = attention.labels(kind)
    which = "mean of the heads" if head is None else f"head {head + 1}"
    axes = {KINDS[0]: "Rows: source words (queries); columns: source words (keys).",
            KINDS[1]: "Rows: the word written at each step; columns: what the decoder has read "
                      "(<bos>, then the words already written).",
            KINDS[2]: "Rows: the word written at each step; columns: source words."}[kind]
    return (f"<div class='attnlab-map' data-kind='{escape(kind)}' data-layer='{layer + 1}' "
            f"data-head='{'mean' if head is None else head + 1}'>"
            f"<p><b>{escape(kind.capitalize())}</b>, layer {layer + 1}, {which}</p>"
            f"{matrix_html(weights, row_labels=rows, col_labels=cols)}"
            f"<p style='font-size:85%;color:#555'>{escape(axes)} Darker = more weight.</p></div>")


def _toggles(options: Sequence[str], description: str) -> widgets.ToggleButtons:
    return widgets.ToggleButtons(options=list(options), index=0, description=description,
                                 style={"description_width": "initial", "button_width": "auto"})


def layer_panel(attention: LayerAttention, kind: widgets.ToggleButtons,
                layer: widgets.ToggleButtons, head: widgets.ToggleButtons) -> widgets.Widget:
    """Precomputed maps of one sentence, nested kind > layer > head, each level selected by
    its control."""
    def heads_of(name: str, i: int) -> widgets.Widget:
        heads = attention.weights[name][i].shape[0]
        return linked_stack([widgets.HTML(map_view(attention, name, i, h))
                             for h in [None, *range(heads)]], head)

    return linked_stack([linked_stack([heads_of(name, i) for i in range(len(attention.weights[name]))],
                                      layer) for name in KINDS], kind)


def layer_explorer(attentions: Sequence[LayerAttention],
                   attend_fn: Callable[[str], LayerAttention] | None = None) -> widgets.VBox:
    """Choose a sentence, a kind of attention, a layer and a head (or their mean) and see the
    labelled map; all views are precomputed, so it works on the static website. With
    ``attend_fn`` (a live kernel), a text box explores a new sentence."""
    if not attentions:
        raise ValueError("the explorer needs at least one precomputed sentence")
    first = attentions[0].weights[KINDS[0]]
    layers, heads = len(first), first[0].shape[0]
    kind = _toggles(KINDS, "Attention:")
    layer = _toggles([f"layer {i + 1}" for i in range(layers)], "Layer:")
    head = _toggles(["mean", *(f"head {h + 1}" for h in range(heads))], "Head:")
    chooser, panels = _sentence_menu([" ".join(a.source[:-1]) for a in attentions],
                                     [layer_panel(a, kind, layer, head) for a in attentions])
    children = [chooser, kind, layer, head, panels]
    if attend_fn is not None:
        children += _live_box(lambda sentence: layer_panel(attend_fn(sentence), kind, layer, head),
                              "<b>Your own sentence</b> (needs a live kernel; the buttons above "
                              "choose its map too):")
    return widgets.VBox(children)
