"""The explorers' data and widgets: the Transformer's layer/head explorer and the HTML maps."""

from __future__ import annotations

import ipywidgets as widgets
import pytest
import torch
from helpers import TOY_SRC as SRC
from helpers import TOY_TGT as TGT

from attnlab.infer.inspection import KINDS, layer_attention
from attnlab.view.explorer import layer_explorer, map_view, matrix_html


@pytest.fixture
def model(toy_transformer):
    return toy_transformer


def test_map_view_is_labelled_and_tagged(model):
    attention = layer_attention(model, "the dog ran .", SRC, TGT, max_len=5)
    html = map_view(attention, KINDS[2], layer=1, head=None)
    assert "data-layer='2'" in html and "data-head='mean'" in html
    assert "Cross-attention</b>, layer 2, mean of the heads" in html
    assert all(f">{token}</th>" in html for token in ["dog", "ran", "&lt;eos&gt;"])
    assert "head 2" in map_view(attention, KINDS[0], layer=0, head=1)
    table = matrix_html(
        torch.tensor([[1.0, 0.0]]),
        row_labels=["a"],
        col_labels=["x", "y"],
        current_row=0,
    )
    assert "▶ a" in table and "title='1.00'" in table and "title='0.00'" in table


def _descendants(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _descendants(child)


def test_layer_explorer_precomputes_every_view_and_links_it(model, monkeypatch):
    sentences = ["the cat sat .", "a dog ran on the mat ."]
    attentions = [layer_attention(model, s, SRC, TGT, max_len=6) for s in sentences]
    links, jslink = [], widgets.jslink
    monkeypatch.setattr(
        widgets, "jslink", lambda a, b: links.append(jslink(a, b)) or links[-1]
    )
    explorer = layer_explorer(attentions)
    views = [
        w
        for w in _descendants(explorer)
        if isinstance(w, widgets.HTML) and "attnlab-map" in w.value
    ]
    assert len(views) == len(sentences) * len(KINDS) * 3 * (
        1 + 2
    )  # layers x (mean + heads)
    stacks = [w for w in _descendants(explorer) if isinstance(w, widgets.Stack)]
    assert len(links) == len(stacks) == 1 + len(sentences) * (1 + len(KINDS) * (1 + 3))
    assert {id(link.target[0]) for link in links} == {
        id(s) for s in stacks
    }  # each Stack once
    chooser, kind, layer, head = explorer.children[:4]
    assert [b for b in head.options] == ["mean", "head 1", "head 2"]
    assert list(kind.options) == list(KINDS) and len(layer.options) == 3
    # Each control drives the Stacks of its level, by index (the browser syncs links alone).
    driven = {
        name: [link.target[0] for link in links if link.source[0] is control]
        for name, control in [
            ("sentence", chooser),
            ("kind", kind),
            ("layer", layer),
            ("head", head),
        ]
    }
    assert all(
        link.source[1] == "index" and link.target[1] == "selected_index"
        for link in links
    )
    assert [len(v) for v in driven.values()] == [
        1,
        2,
        2 * len(KINDS),
        2 * len(KINDS) * 3,
    ]
    head_stack = driven["head"][-1]  # sentence 2, cross-attention, layer 3
    assert all(
        f"data-head='{h}'" in view.value
        for h, view in zip(["mean", 1, 2], head_stack.children)
    )
    assert "data-kind='cross-attention' data-layer='3'" in head_stack.children[2].value
    with pytest.raises(ValueError, match="at least one"):
        layer_explorer([])


def test_layer_explorer_live_box_reports_bad_input(model):
    explorer = layer_explorer(
        [layer_attention(model, "the cat .", SRC, TGT, max_len=4)],
        attend_fn=lambda s: layer_attention(model, s, SRC, TGT, max_len=4),
    )
    text, live = explorer.children[-1].children
    text.value = "   "
    assert "empty sentence" in live.children[0].value
    text.value = "the mat ."
    assert isinstance(live.children[0], widgets.Stack)
