"""Figures for the chapters: loss curves, length histograms, coverage, masks and
heatmaps.

Every function returns its matplotlib ``Figure``; nothing is shown as a side
effect except by :class:`LiveLossPlot`, whose job is to show a figure.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from attnlab.train.training import History


def _figure(width: float = 6.0, height: float = 3.5) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def loss_figure(history: History, *, title: str = "Training loss") -> Figure:
    """Training (and validation) loss per step."""
    fig, ax = _figure()
    ax.plot(history.steps, history.train_loss, label="training")
    if history.val_loss:
        ax.plot(history.val_steps, history.val_loss, "o-", label="validation")
    ax.set(xlabel="step", ylabel="cross-entropy per token", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


class LiveLossPlot:
    """A trainer callback that redraws the loss curve in place while training runs.

    In Jupyter the figure updates at most every ``interval`` seconds; when the
    notebook is executed to build the book, the final curve is what the page shows.
    """

    def __init__(self, *, title: str = "Training loss", interval: float = 2.0):
        self.title, self.interval = title, interval
        self._handle = None
        self._last = 0.0
        self.figure: Figure | None = None
        self.draws = 0  # how many times the curve was drawn

    def __call__(self, history: History) -> None:
        waited = time.perf_counter() - self._last
        if self._handle is not None and waited < self.interval:
            return
        self._draw(history)

    def close(self, history: History) -> None:
        """Draw the final curve (the trainer calls this when training ends)."""
        self._draw(history)

    def _draw(self, history: History) -> None:
        self._last = time.perf_counter()
        self.figure = loss_figure(history, title=self.title)
        self.draws += 1
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:  # plain Python: keep the figure, show nothing
            return
        if get_ipython() is None:
            return
        if self._handle is None:
            self._handle = display(self.figure, display_id=True)
        else:
            self._handle.update(self.figure)


def length_histogram(
    lengths: dict[str, Sequence[int]],
    *,
    title: str,
    xlabel: str = "tokens per sentence",
) -> Figure:
    """Overlaid histograms of sentence lengths, one per named series."""
    fig, ax = _figure()
    longest = max(max(v) for v in lengths.values())
    bins = np.arange(0.5, longest + 1.5)
    for name, values in lengths.items():
        ax.hist(values, bins=bins, alpha=0.55, label=name)
    ax.set(xlabel=xlabel, ylabel="sentences", title=title)
    ax.legend()
    return fig


def coverage_figure(
    min_freqs: Sequence[int],
    sizes: Sequence[int],
    coverages: dict[str, Sequence[float]],
    *,
    title: str,
    size_label: str = "vocabulary size",
) -> Figure:
    """Vocabulary size and token coverage as the minimum frequency grows."""
    fig, ax = _figure()
    for name, values in coverages.items():
        ax.plot(min_freqs, [100 * v for v in values], "o-", label=f"coverage: {name}")
    ax.set(
        xlabel="minimum frequency", ylabel="held-out tokens covered (%)", title=title
    )
    ax.grid(alpha=0.3)
    twin = ax.twinx()
    twin.plot(min_freqs, sizes, "s--", color="grey", label=size_label)
    twin.set_ylabel("vocabulary size (tokens)")
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="center right")
    return fig


def subword_figure(rows: dict[str, Sequence[dict]]) -> Figure:
    """Unknown held-out tokens and tokens per sentence against the vocabulary's size,
    for each language. ``rows[language]`` holds one dict per number of merges
    (``merges``, ``vocabulary``, ``unknown``, ``tokens_per_sentence``), and one for
    whole words (``merges`` = "words"), drawn as a separate point."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    panels = ((left, "unknown", 100), (right, "tokens_per_sentence", 1))
    for (language, series), color in zip(rows.items(), ("C0", "C1")):
        words = [r for r in series if r["merges"] == "words"]
        pieces = [r for r in series if r["merges"] != "words"]
        for ax, key, scale in panels:
            ax.plot(
                [r["vocabulary"] for r in pieces],
                [scale * r[key] for r in pieces],
                "o-",
                color=color,
                label=f"{language}, subwords",
            )
            ax.plot(
                [r["vocabulary"] for r in words],
                [scale * r[key] for r in words],
                "X",
                markersize=10,
                color=color,
                label=f"{language}, whole words",
            )
    for ax, ylabel in (
        (left, "unknown held-out tokens (%)"),
        (right, "tokens per held-out sentence"),
    ):
        ax.set_xscale("log")
        ax.set(xlabel="vocabulary size (tokens)", ylabel=ylabel)
        ax.grid(alpha=0.3, which="both")
    left.legend(fontsize=8)
    fig.suptitle(
        "Subwords against whole words: the vocabulary's size, "
        "unknown tokens and sentence length"
    )
    return fig


def _array(values) -> np.ndarray:
    """``values`` as a float NumPy array: a tensor may be on any device and part of
    an autograd graph."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
    return np.asarray(values, dtype=float)


def heatmap(
    matrix,
    *,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    xlabel: str = "",
    ylabel: str = "",
    colorbar: str = "",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
) -> Figure:
    """A labelled heatmap: one row per ``row_labels`` token, one column per
    ``col_labels`` token."""
    matrix = _array(matrix)
    if matrix.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"matrix of shape {matrix.shape} does not "
            f"fit {len(row_labels)} row and {len(col_labels)} "
            "column labels"
        )
    fig, ax = _figure(
        max(3.0, 0.45 * len(col_labels) + 2), max(2.0, 0.4 * len(row_labels) + 1.2)
    )
    image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=60, ha="right")
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    fig.colorbar(image, ax=ax, label=colorbar)
    return fig


def token_grid(
    tokens: Sequence[Sequence[str]],
    mask,
    *,
    title: str,
    true_label: str = "real token",
    false_label: str = "padding",
) -> Figure:
    """A padded batch drawn as a grid: each cell shows its token and is shaded by
    ``mask``.

    ``tokens`` holds one row of token strings per sentence (padding included),
    ``mask`` the (B, S) booleans to shade (True = light).
    """
    mask = np.asarray(mask, dtype=bool)
    rows, cols = mask.shape
    if [len(r) for r in tokens] != [cols] * rows:
        raise ValueError(f"tokens must form a {rows} x {cols} grid like the mask")
    fig, ax = _figure(max(4.0, 0.62 * cols + 2.4), max(2.0, 0.36 * rows + 1.2))
    ax.imshow(~mask, cmap="Greys", vmin=0, vmax=1.6, aspect="auto")
    for r in range(rows):
        for c in range(cols):
            ax.text(
                c,
                r,
                tokens[r][c],
                ha="center",
                va="center",
                fontsize=8,
                color="black" if mask[r, c] else "white",
            )
    ax.set_xticks(range(cols), [str(c) for c in range(cols)])
    ax.set_yticks(range(rows), [f"sentence {r}" for r in range(rows)])
    ax.set(xlabel="position", title=title)
    ax.set_xticks(np.arange(-0.5, cols), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    handles = [
        ax.fill_between([], [], color=colour, label=label)
        for colour, label in (
            ("white", f"True: {true_label}"),
            ("#555555", f"False: {false_label}"),
        )
    ]
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        frameon=True,
        edgecolor="grey",
    )
    return fig


def bucket_figure(
    series: dict[str, Sequence[dict]],
    *,
    key: str,
    title: str,
    ylabel: str,
    xlabel: str = "source length (tokens)",
) -> Figure:
    """Grouped bars: one group per length bucket, one bar per named series.

    Each series is a list of ``{"bucket": label, key: value}`` rows, as
    :func:`attnlab.measure.metrics.bleu_by_length` returns; a row that also has
    ``low`` and ``high`` (a 95 % interval) gets an error bar from one to the other.
    """
    fig, ax = _figure()
    labels = list(
        dict.fromkeys(row["bucket"] for rows in series.values() for row in rows)
    )
    width = 0.8 / len(series)
    for k, (name, rows) in enumerate(series.items()):
        values = {row["bucket"]: row[key] for row in rows}
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
        bars = ax.bar(
            xs, [values.get(label, np.nan) for label in labels], width, label=name
        )
        ax.bar_label(bars, fmt="%.2g", fontsize=7, padding=1)
        ranged = [
            (x, row)
            for x, label in zip(xs, labels)
            for row in rows
            if row["bucket"] == label and "low" in row and "high" in row
        ]
        if ranged:
            ax.errorbar(
                [x for x, _ in ranged],
                [row[key] for _, row in ranged],
                yerr=[
                    [row[key] - row["low"] for _, row in ranged],
                    [row["high"] - row[key] for _, row in ranged],
                ],
                fmt="none",
                ecolor="0.2",
                elinewidth=0.8,
                capsize=2,
            )
    ax.set_xticks(range(len(labels)), labels)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if len(series) > 1:
        ax.legend()
    return fig


def curves_figure(
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    logy: bool = False,
) -> Figure:
    """Named (x, y) curves on one axis, optionally on log scales."""
    fig, ax = _figure()
    for name, (xs, ys) in curves.items():
        ax.plot(xs, ys, "o-", markersize=3, label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


def learning_curves(
    histories: dict[str, History],
    *,
    score: str = "bleu",
    title: str = "Validation BLEU (greedy) as training goes on",
    ylabel: str = "validation BLEU",
) -> Figure:
    """Each named run's validation ``score`` (a :attr:`History.val_scores` entry)
    against training steps (left) and training seconds (right), on one figure."""
    missing = [name for name, h in histories.items() if score not in h.val_scores]
    if missing:
        raise ValueError(
            f"no validation {score!r} recorded for {missing}: "
            "train them with a callback that scores them"
        )
    fig = Figure(figsize=(9.0, 3.5), layout="constrained")
    by_steps, by_time = fig.subplots(1, 2, sharey=True)
    for name, history in histories.items():
        values = history.val_scores[score]
        by_steps.plot(
            history.val_steps[: len(values)], values, "o-", markersize=3, label=name
        )
        by_time.plot(
            history.val_seconds[: len(values)], values, "o-", markersize=3, label=name
        )
    by_steps.set(xlabel="training steps", ylabel=ylabel)
    by_time.set(xlabel="training seconds (evaluations included)")
    for ax in (by_steps, by_time):
        ax.grid(alpha=0.3)
    by_steps.legend()
    fig.suptitle(title)
    return fig


def bars_grid(
    series: dict[str, Sequence[float]],
    *,
    labels: Sequence[str],
    title: str,
    ylabel: str = "attention weight",
) -> Figure:
    """One small bar chart per named series, side by side, over the same labelled
    items."""
    fig = Figure(figsize=(2.6 * len(series), 2.8), layout="constrained")
    axes = fig.subplots(1, len(series), sharey=True)
    for ax, (name, values) in zip(np.atleast_1d(axes), series.items()):
        ax.bar(range(len(labels)), values)
        ax.set_xticks(range(len(labels)), labels, rotation=45)
        ax.set_title(name, fontsize=10)
    np.atleast_1d(axes)[0].set_ylabel(ylabel)
    fig.suptitle(title)
    return fig


def heads_figure(
    weights, *, row_labels: Sequence[str], col_labels: Sequence[str], title: str
) -> Figure:
    """(h, T, S) attention weights as h labelled heatmaps side by side, one colour
    bar."""
    weights = _array(weights)
    heads = weights.shape[0]
    fig = Figure(
        figsize=(2.4 * heads + 1.2, 0.28 * len(row_labels) + 1.8), layout="constrained"
    )
    axes = np.atleast_1d(fig.subplots(1, heads, sharey=True))
    for h, ax in enumerate(axes):
        image = ax.imshow(weights[h], cmap="Blues", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(col_labels)), col_labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
        ax.set_title(f"head {h + 1}", fontsize=10)
    fig.colorbar(image, ax=list(axes), label="attention weight", shrink=0.8)
    fig.suptitle(title)
    return fig


def matrix_figure(
    matrix,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    colorbar: str = "",
    cmap: str = "RdBu",
) -> Figure:
    """A numeric matrix as an image with a colour bar (e.g. positional encodings)."""
    fig, ax = _figure()
    image = ax.imshow(_array(matrix), cmap=cmap, aspect="auto")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.colorbar(image, ax=ax, label=colorbar)
    return fig


# Colour maps the course draws with: perceptually ordered, so that a reader who does not
# tell red from green (or prints in grey) reads the same order of values.
SEQUENTIAL_MAPS = ("viridis", "cividis", "Blues", "Greys")
DIVERGING_MAPS = ("RdBu",)  # ColorBrewer's red-blue, marked colour-blind safe


def _labels(texts, limit: int = 24) -> str:
    words = [t.get_text() for t in texts if t.get_text()]
    if len(words) > limit:
        words = words[:limit] + [f"and {len(words) - limit} more"]
    return ", ".join(words)


def describe(fig: Figure) -> str:
    """A text alternative for ``fig``, for readers who cannot see it: for each plot in
    it, its kind, title and axes, the tokens along a heatmap's sides and the names of
    its curves or bars. The website's figures carry it as their ``alt`` text."""
    parts = []
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text():
        parts.append(suptitle.get_text())
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        kind = (
            "heatmap"
            if ax.images
            else "line chart"
            if ax.lines
            else "bar chart"
            if ax.patches
            else "chart"
            if ax.collections
            else None
        )
        if kind is None and not ax.texts:
            continue
        bits = [kind or "panel"]
        if ax.get_title():
            bits.append(f"“{ax.get_title()}”")
        xlabel, ylabel = ax.get_xlabel(), ax.get_ylabel()
        if xlabel and ylabel:
            bits.append(f"{ylabel} against {xlabel}")
        elif xlabel or ylabel:
            bits.append(f"along {xlabel or ylabel}")
        if ax.images:
            rows, cols = _labels(ax.get_yticklabels()), _labels(ax.get_xticklabels())
            if rows:
                bits.append(f"rows: {rows}")
            if cols:
                bits.append(f"columns: {cols}")
        if ax.images and ax.texts:
            bits.append(f"cells: {_labels(ax.texts, limit=40)}")
        legend = ax.get_legend()
        if legend is not None and legend.get_texts():
            bits.append(f"showing {_labels(legend.get_texts())}")
        parts.append(", ".join(bits))
    if not parts:
        raise ValueError("the figure has nothing to describe: no plot, title or text")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")
