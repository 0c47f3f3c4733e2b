"""Figures carry their token labels, and refuse labels that do not fit the data."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab.train.training import History
from attnlab.view import plots


def test_heatmap_is_labelled_with_tokens():
    fig = plots.heatmap(
        np.eye(2, 3),
        row_labels=["je", "vois"],
        col_labels=["i", "see", "."],
        title="weights",
        colorbar="weight",
    )
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["i", "see", "."]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["je", "vois"]
    assert ax.get_title() == "weights" and len(fig.axes) == 2  # with its colour bar
    with pytest.raises(ValueError, match="does not fit 3 row"):
        plots.heatmap(
            np.eye(2), row_labels=["a", "b", "c"], col_labels=["x", "y"], title="t"
        )


def test_token_grid_writes_every_token():
    tokens = [["go", "!", "<eos>"], ["hi", "<eos>", "<pad>"]]
    fig = plots.token_grid(
        tokens, [[True, True, True], [True, True, False]], title="mask"
    )
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["go", "!", "<eos>", "hi", "<eos>", "<pad>"]
    with pytest.raises(ValueError, match="grid"):
        plots.token_grid([["a"]], [[True, False]], title="t")


def test_loss_figure_and_live_plot_outside_jupyter():
    history = History(
        steps=[10, 20], train_loss=[2.0, 1.5], val_steps=[20], val_loss=[1.7]
    )
    fig = plots.loss_figure(history)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == [
        "training",
        "validation",
    ]
    live = plots.LiveLossPlot()
    live(history)
    live.close(history)
    assert live.draws == 2 and live.figure is not None


def test_live_loss_plot_updates_one_figure_in_a_notebook(tmp_path):
    """Run in a kernel, the loss curve is one displayed figure redrawn in place, and the
    executed notebook keeps it (that is what the built page shows), beside a progress bar."""
    import nbformat
    from helpers import ROOT
    from nbclient import NotebookClient

    code = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from helpers import TinySeq2Seq, tiny_task
from attnlab.view.notebook import setup
from attnlab.view.plots import LiveLossPlot
from attnlab.train.training import Trainer
run = setup(seed=0)
task = tiny_task()
plot = LiveLossPlot(interval=0.0)
history = Trainer(TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab)), device="cpu").fit(
    task.loader("train", 64), max_steps=20, log_every=5, callbacks=[plot])
print("draws", plot.draws, "points", len(history.steps))
"""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = notebook.cells[0].outputs
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    bars = [
        o
        for o in outputs
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert len(images) == 1 and len(bars) == 1
    assert (
        "draws 5 points 4" in text
    )  # 4 logged points + the final redraw, all in one figure


def test_figures_take_tensors_from_autograd_and_any_device():
    """Attention weights straight from a model (part of an autograd graph, on a GPU
    when there is one) plot as they are: NumPy alone would refuse them."""
    import torch

    weights = torch.softmax(torch.randn(2, 3, 4, requires_grad=True), -1)
    with pytest.raises((RuntimeError, TypeError)):
        np.asarray(weights)  # what the plots must avoid
    fig = plots.heatmap(
        weights[0], row_labels=["a", "b", "c"], col_labels=list("wxyz"), title="t"
    )
    assert np.allclose(fig.axes[0].images[0].get_array(), weights[0].detach().numpy())
    fig = plots.heads_figure(
        weights, row_labels=["a", "b", "c"], col_labels=list("wxyz"), title="t"
    )
    assert len(fig.axes) == 3  # two heads and a colour bar
    plots.matrix_figure(weights[0], title="t", xlabel="x", ylabel="y")


def test_learning_curves_plot_each_run_against_steps_and_seconds():
    runs = {
        "gru": History(
            val_steps=[100, 200],
            val_seconds=[5.0, 9.0],
            val_scores={"bleu": [3.0, 8.0]},
        ),
        "transformer": History(
            val_steps=[100, 200],
            val_seconds=[7.0, 13.0],
            val_scores={"bleu": [6.0, 15.0]},
        ),
    }
    fig = plots.learning_curves(runs)
    by_steps, by_time = fig.axes
    assert [line.get_label() for line in by_steps.get_lines()] == ["gru", "transformer"]
    assert list(by_steps.get_lines()[1].get_xdata()) == [100, 200]
    assert list(by_time.get_lines()[1].get_xdata()) == [7.0, 13.0]
    assert list(by_time.get_lines()[0].get_ydata()) == [3.0, 8.0]
    assert (
        by_steps.get_xlabel() == "training steps" and "seconds" in by_time.get_xlabel()
    )
    with pytest.raises(
        ValueError, match="no validation 'bleu' recorded for \\['old'\\]"
    ):
        plots.learning_curves({**runs, "old": History(val_steps=[100])})


def test_bucket_figure_draws_a_bar_per_bucket_and_the_intervals_it_is_given():
    rows = {
        "gru": [{"bucket": "1-5", "bleu": 10.0}, {"bucket": "6-10", "bleu": 8.0}],
        "attention": [
            {"bucket": "1-5", "bleu": 12.0, "low": 11.0, "high": 14.0},
            {"bucket": "6-10", "bleu": 15.0, "low": 13.5, "high": 16.0},
        ],
    }
    fig = plots.bucket_figure(rows, key="bleu", title="BLEU", ylabel="BLEU")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1-5", "6-10"]
    assert [bar.get_height() for bar in ax.patches] == [10.0, 8.0, 12.0, 15.0]
    (bars,) = [c for c in ax.containers if hasattr(c, "has_yerr") and c.has_yerr]
    (segments,) = bars.lines[2]
    assert [tuple(seg[:, 1]) for seg in segments.get_segments()] == [
        (11.0, 14.0),
        (13.5, 16.0),
    ]


def test_describe_says_what_a_figure_shows():
    """The text alternative of a heatmap names its title, axes and tokens; a chart's
    names its curves; a figure with nothing in it is refused."""
    from matplotlib.figure import Figure

    fig = plots.heatmap(
        np.eye(2, 3),
        row_labels=["je", "vois"],
        col_labels=["i", "see", "."],
        title="Attention",
        xlabel="source",
        ylabel="output",
    )
    text = plots.describe(fig)
    assert text == (
        "Heatmap, “Attention”, output against source, rows: je, vois, "
        "columns: i, see, ."
    )
    history = History(
        steps=[1, 2], train_loss=[2.0, 1.0], val_steps=[2], val_loss=[1.5]
    )
    text = plots.describe(plots.loss_figure(history))
    assert (
        text.startswith("Line chart, “Training loss”")
        and "training, validation" in text
    )
    grid = plots.describe(
        plots.token_grid([["a", "<pad>"]], [[True, False]], title="mask")
    )
    assert "cells: a, <pad>" in grid
    with pytest.raises(ValueError, match="nothing to describe"):
        plots.describe(Figure())


def test_notebook_figures_carry_their_description():
    """What a notebook shows of a figure is a PNG whose Description is the figure's
    text alternative (the book's alt text)."""
    import io

    from PIL import Image

    from attnlab.view.notebook import figure_png

    fig = plots.heatmap(
        np.eye(2), row_labels=["a", "b"], col_labels=["x", "y"], title="t"
    )
    with Image.open(io.BytesIO(figure_png(fig))) as image:
        assert image.text["Description"] == plots.describe(fig)
