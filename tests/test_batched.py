"""Batched dataclasses: select picks the same batch rows of every tensor they hold."""

from __future__ import annotations

import dataclasses

import torch

from attnlab.nn.batched import Batched, batch_dim


@dataclasses.dataclass
class Inner(Batched):
    keys: torch.Tensor  # (B, S)


@dataclasses.dataclass
class State(Batched):
    rows: torch.Tensor  # (B, 2)
    layers: torch.Tensor = batch_dim(1)  # (N, B): batch on the second axis
    cache: list[torch.Tensor] | None = None  # (B, 3) each
    inner: Inner | None = None
    steps: int = 0  # not a tensor: kept


def make(batch: int = 4) -> State:
    rows = torch.arange(batch * 2).view(batch, 2)
    layers = torch.arange(3 * batch).view(3, batch)
    cache = [torch.arange(batch * 3).view(batch, 3) + 100 * i for i in range(2)]
    return State(
        rows, layers, cache, Inner(torch.arange(batch * 5).view(batch, 5)), steps=7
    )


def test_select_picks_rows_on_each_fields_batch_axis():
    state = make()
    index = torch.tensor([2, 2, 0])
    picked = state.select(index)
    assert torch.equal(picked.rows, state.rows[index])
    assert torch.equal(picked.layers, state.layers[:, index])
    assert all(torch.equal(a, b[index]) for a, b in zip(picked.cache, state.cache))
    assert isinstance(picked.cache, list) and len(picked.cache) == 2
    assert torch.equal(picked.inner.keys, state.inner.keys[index])
    assert picked.steps == 7 and type(picked) is State


def test_select_leaves_the_original_untouched_and_handles_absent_fields():
    state = State(torch.zeros(3, 2), torch.zeros(1, 3))
    picked = state.select(torch.tensor([1]))
    assert picked.cache is None and picked.inner is None
    assert picked.rows.shape == (1, 2) and picked.layers.shape == (1, 1)
    assert state.rows.shape == (3, 2)
