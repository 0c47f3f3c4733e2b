"""Figures carry their token labels, and refuse labels that do not fit the data."""

from __future__ import annotations

import numpy as np
import pytest

from attnlab import plots
from attnlab.training import History


def test_heatmap_is_labelled_with_tokens():
    fig = plots.heatmap(np.eye(2, 3), row_labels=["je", "vois"], col_labels=["i", "see", "."],
                        title="weights", colorbar="weight")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["i", "see", "."]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["je", "vois"]
    assert ax.get_title() == "weights" and len(fig.axes) == 2  # with its colour bar
    with pytest.raises(ValueError, match="does not fit 3 row"):
        plots.heatmap(np.eye(2), row_labels=["a", "b", "c"], col_labels=["x", "y"], title="t")


def test_token_grid_writes_every_token():
    tokens = [["go", "!", "<eos>"], ["hi", "<eos>", "<pad>"]]
    fig = plots.token_grid(tokens, [[True, True, True], [True, True, False]], title="mask")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["go", "!", "<eos>", "hi", "<eos>", "<pad>"]
    with pytest.raises(ValueError, match="grid"):
        plots.token_grid([["a"]], [[True, False]], title="t")


def test_loss_figure_and_live_plot_outside_jupyter():
    history = History(steps=[10, 20], train_loss=[2.0, 1.5], val_steps=[20], val_loss=[1.7])
    fig = plots.loss_figure(history)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["training", "validation"]
    live = plots.LiveLossPlot()
    live(history)
    live.close(history)
    assert live.draws == 2 and live.figure is not None
