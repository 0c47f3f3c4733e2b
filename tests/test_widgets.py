"""linked_stack: one view at a time, chosen by a control, on ipywidgets 8 and 7."""

from __future__ import annotations

import io

import ipywidgets as widgets
import pytest

from attnlab.view import widgets as attnlab_widgets
from attnlab.view.widgets import linked_stack, precomputed_views, slider_views


def views(n):
    return [widgets.HTML(f"view {i}") for i in range(n)]


def shown(widget):
    """The views a reader sees: a Stack shows its selected child, a box all of its children."""
    if attnlab_widgets.HAS_STACK and isinstance(widget, widgets.Stack):
        return shown(widget.children[widget.selected_index])
    if isinstance(widget, widgets.HTML):
        return [widget.value]
    return [value for child in widget.children for value in shown(child)]


def test_on_ipywidgets_8_a_stack_linked_in_the_browser():
    assert attnlab_widgets.HAS_STACK, (
        "the website is built with ipywidgets 8 (requirements.txt)"
    )
    slider = widgets.IntSlider(value=1, min=0, max=2)
    stack = linked_stack(views(3), slider, "value")
    assert isinstance(stack, widgets.Stack) and stack.selected_index == 1
    assert shown(stack) == ["view 1"]


@pytest.mark.parametrize(
    "make",
    [
        lambda v: slider_views(v, description="n:"),
        lambda v: precomputed_views(["a", "b", "c"], v),
    ],
)
def test_on_ipywidgets_7_the_kernel_swaps_the_view(monkeypatch, make):
    # ipywidgets 7 has no Stack: the control's change, sent by the front end to the kernel,
    # replaces the box's child. Setting the trait here is what that message does.
    monkeypatch.setattr(attnlab_widgets, "HAS_STACK", False)
    box = make(views(3))
    control, shown_box = box.children
    assert not isinstance(shown_box, widgets.Stack)
    assert shown(shown_box) == ["view 0"]
    trait = "value" if isinstance(control, widgets.IntSlider) else "index"
    setattr(control, trait, 2)
    assert shown(shown_box) == ["view 2"]
    setattr(control, trait, 1)
    assert shown(shown_box) == ["view 1"]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="at least one view"):
        linked_stack([], widgets.IntSlider(), "value")
    with pytest.raises(ValueError, match="selects view 5, but there are 2"):
        linked_stack(views(2), widgets.IntSlider(value=5, max=9), "value")


def test_figure_widget_has_a_text_alternative():
    import numpy as np
    from PIL import Image

    from attnlab.view import plots

    def description(widget):
        return Image.open(io.BytesIO(widget.value)).text["Description"]

    fig = plots.heatmap(
        np.eye(2), row_labels=["a", "b"], col_labels=["x", "y"], title="“t”"
    )  # not Latin-1: an iTXt chunk
    assert description(attnlab_widgets.figure_widget(fig)) == plots.describe(fig)
    assert "“t”" in plots.describe(fig)
    assert description(attnlab_widgets.figure_widget(fig, alt="A map.")) == "A map."
    assert attnlab_widgets.figure_widget(fig).tooltip is None
    with pytest.raises(ValueError, match="alt is empty"):
        attnlab_widgets.figure_widget(fig, alt=" ")


def test_a_token_table_scrolls_in_a_region_a_keyboard_can_reach():
    from html.parser import HTMLParser

    html = attnlab_widgets.token_table(
        {"source tokens": ["don't", "<eos>"], "source ids": [7, 2]},
        caption="Encoder <input>",
    )
    tags = []
    parser = HTMLParser()
    parser.handle_starttag = lambda tag, attrs: tags.append((tag, dict(attrs)))
    parser.feed(html)
    (outer, attrs), (table, _) = tags[:2]
    assert (outer, table) == ("div", "table")
    assert attrs["tabindex"] == "0" and attrs["role"] == "region"
    assert attrs["aria-label"] == "Encoder <input>"  # escaped, then read back
    assert "overflow-x:auto" in attrs["style"]
    cells = [t for t, _ in tags if t == "td"]
    assert len(cells) == 4 and "&lt;eos&gt;" in html and "don&#x27;t" in html
