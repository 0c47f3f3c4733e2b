"""Widgets that keep working on the static website, where no Python kernel runs.

On the built site, Python callbacks do nothing; links made with
``widgets.jslink`` run in the browser alone. So every view is computed in
advance and :func:`linked_stack` shows the one a control selects. In Jupyter
or Colab the same widgets work live, on ipywidgets 7 (Colab's) and 8.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from html import escape

import ipywidgets as widgets

# ipywidgets 8 has a Stack, whose selected child a jslink switches in the browser alone:
# the website, where no kernel runs, depends on it. ipywidgets 7 has no Stack, and
# Colab's front end renders only ipywidgets 7 (a kernel with 8 shows no widgets there),
# so on 7 a live kernel swaps the shown view instead. This is the one place where the
# two versions differ.
HAS_STACK = hasattr(widgets, "Stack")


def linked_stack(
    views: Sequence[widgets.Widget], control: widgets.Widget, trait: str = "index"
) -> widgets.Widget:
    """Show the view that ``control``'s ``trait`` (an index into ``views``) selects.

    On ipywidgets 8 this is a ``Stack`` linked to the control in the browser,
    so it works on the static website too; on ipywidgets 7 a box whose child the
    kernel replaces when the control changes.
    """
    views = list(views)
    if not views:
        raise ValueError("need at least one view")
    start = getattr(control, trait)
    if not 0 <= start < len(views):
        raise ValueError(
            f"the control selects view {start}, but there are {len(views)} views"
        )
    if HAS_STACK:
        stack = widgets.Stack(views, selected_index=start)
        widgets.jslink((control, trait), (stack, "selected_index"))
        return stack
    shown = widgets.VBox([views[start]])
    control.observe(
        lambda change: setattr(shown, "children", [views[change["new"]]]), names=trait
    )
    return shown


def dropdown_views(
    labels: Sequence[str],
    views: Sequence[widgets.Widget],
    *,
    description: str = "Show:",
) -> tuple[widgets.Dropdown, widgets.Widget]:
    """A dropdown, and the one of the precomputed ``views`` it selects (see
    :func:`linked_stack`), to be placed where they belong."""
    if len(labels) != len(views) or not views:
        raise ValueError(
            f"need one label per view, got {len(labels)} labels and {len(views)} views"
        )
    chooser = widgets.Dropdown(
        options=list(labels),
        index=0,
        description=description,
        layout=widgets.Layout(width="max-content"),
        style={"description_width": "initial"},
    )
    # The dropdown's index, not its value: a value cannot be synced without a kernel.
    return chooser, linked_stack(views, chooser, "index")


def precomputed_views(
    labels: Sequence[str],
    views: Sequence[widgets.Widget],
    *,
    description: str = "Show:",
) -> widgets.VBox:
    """A dropdown above the precomputed view it selects, in the browser alone."""
    return widgets.VBox(list(dropdown_views(labels, views, description=description)))


def live_box(
    make_view: Callable[[str], widgets.Widget],
    *,
    value: str = "",
    description: str = "",
    placeholder: str = "",
) -> widgets.VBox:
    """A text box whose sentence ``make_view`` turns into a view when Enter is pressed:
    it needs a live kernel (on the website it shows the view of ``value``, if any). Bad
    input (``make_view`` raising ``ValueError``, e.g. for an empty sentence) shows its
    message."""
    text = widgets.Text(
        value=value,
        description=description,
        placeholder=placeholder,
        continuous_update=False,
        layout=widgets.Layout(width="36em"),
    )
    shown = widgets.VBox([])

    def show(sentence: str) -> None:
        try:
            shown.children = [make_view(sentence)]
        except ValueError as error:
            message = f"<p style='color:#a33'>{escape(str(error))}</p>"
            shown.children = [widgets.HTML(message)]

    if value:
        show(value)
    text.observe(lambda change: show(change["new"]), names="value")
    return widgets.VBox([text, shown])


def token_table(rows: dict[str, Sequence[object]], *, caption: str = "") -> str:
    """HTML for a small table: one named row per entry, one cell per token or id. A
    table wider than its box (a long sentence on a phone) scrolls in its own region,
    which a keyboard can reach (tabindex) and a screen reader names (its caption)."""
    width = max(len(cells) for cells in rows.values())
    # color: inherit: the theme's muted caption colour is for its own background, not
    # the widget's (unreadable in dark mode).
    head = (
        "<caption style='caption-side:top;text-align:left;color:inherit'>"
        f"{escape(caption)}</caption>"
        if caption
        else ""
    )
    body = []
    for name, cells in rows.items():
        tds = "".join(
            "<td style='padding:2px 6px;border:1px "
            f"solid #ccc;text-align:center'>{escape(str(c))}</td>"
            for c in cells
        )
        tds += "<td></td>" * (width - len(cells))
        body.append(
            "<tr><th style='padding:2px "
            f"8px;text-align:right'>{escape(name)}</th>{tds}</tr>"
        )
    table = (
        "<table class='attnlab-tokens' "
        "style='border-collapse:collapse;font-family:monospace;margin:4px "
        f"0'>{head}{''.join(body)}</table>"
    )
    name = escape(caption or "tokens", quote=True)
    return (
        f"<div class='attnlab-scroll' role='region' aria-label='{name}' tabindex='0' "
        f"style='overflow-x:auto;max-width:100%'>{table}</div>"
    )


def candidates_html(translation) -> str:
    """The prediction head made visible: at each output step, the k most likely words
    and their probabilities, the chosen one first (from
    :func:`attnlab.infer.decoding.translate`)."""
    rows = []
    for step, candidates in enumerate(translation.candidates, start=1):
        cells = []
        for rank, (token, p) in enumerate(candidates):
            weight = "bold" if rank == 0 else "normal"
            bar = f"background:#2b7bd9;height:5px;width:{max(1, round(80 * p))}px"
            cells.append(
                "<td style='padding:2px 8px;font-family:monospace;"
                f"font-weight:{weight}'>"
                f"{escape(token)}<div style='{bar}'></div>"
                f"<span style='font-size:80%;color:#555'>{p:.2f}</span></td>"
            )
        rows.append(
            "<tr><th style='padding:2px 8px;text-align:right'>step "
            f"{step}</th>{''.join(cells)}</tr>"
        )
    notes = []
    if translation.unknown:
        notes.append(
            "read as &lt;unk&gt;: " + ", ".join(escape(w) for w in translation.unknown)
        )
    if translation.truncated:
        notes.append("the sentence was cut to the model's maximum source length")
    note = f"<p style='color:#a33'>{'; '.join(notes)}</p>" if notes else ""
    return (
        f"<p><b>Source:</b> {escape(' '.join(translation.source))}<br>"
        f"<b>Translation:</b> {escape(translation.text)}</p>{note}"
        f"<table style='border-collapse:collapse'>{''.join(rows)}</table>"
    )


def translate_box(translate_fn, initial: str) -> widgets.VBox:
    """A text box whose sentence is translated by ``translate_fn(sentence) ->
    Translation`` when Enter is pressed, showing :func:`candidates_html`. It needs a
    live kernel; on the static website it shows the translation of ``initial``."""

    def view(sentence: str) -> widgets.HTML:
        return widgets.HTML(candidates_html(translate_fn(sentence)))

    return live_box(view, value=initial, description="English:")


def figure_widget(figure, *, alt: str | None = None) -> widgets.Image:
    """A matplotlib figure as an image widget (its PNG is stored with the notebook).

    ``alt``, by default :func:`attnlab.view.plots.describe`'s account of the figure, is
    the image's text alternative. It travels inside the PNG (its ``Description``), where
    the website's ``a11y.js`` reads it into the image's ``alt``: the widget manager the
    book uses fails on an image widget with a ``tooltip``."""
    from attnlab.view.plots import describe

    alt = describe(figure) if alt is None else alt
    if not alt.strip():
        raise ValueError("a figure needs a text alternative: alt is empty")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, metadata={"Description": alt})
    return widgets.Image(value=buffer.getvalue(), format="png")


def slider_views(views: Sequence[widgets.Widget], *, description: str) -> widgets.VBox:
    """A slider that switches between precomputed ``views``, in the browser alone."""
    if not views:
        raise ValueError("need at least one view")
    slider = widgets.IntSlider(
        value=0,
        min=0,
        max=len(views) - 1,
        description=description,
        style={"description_width": "initial"},
    )
    return widgets.VBox([slider, linked_stack(views, slider, "value")])
