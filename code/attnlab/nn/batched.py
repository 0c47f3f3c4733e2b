"""Dataclasses of batch-first tensors whose rows can be picked together.

A model's memory and decoder state (:mod:`attnlab.models.contract`), and the keys and
values multi-head attention caches (:class:`attnlab.nn.multihead.KeyValue`), are small
dataclasses of tensors. Beam search follows its hypotheses by picking batch rows of all
of them at once: :meth:`Batched.select`.
"""

from __future__ import annotations

import dataclasses

import torch


def batch_dim(dim: int):
    """A dataclass field whose tensor has its batch axis at ``dim`` (0 when not
    said)."""
    return dataclasses.field(metadata={"batch_dim": dim})


class Batched:
    """Mixin for the dataclasses of memory and state: :meth:`select` picks batch rows of
    every tensor field (lists and nested :class:`Batched` included; other values are
    kept)."""

    def select(self, index: torch.Tensor):
        """The rows ``index`` (B',) of every tensor, e.g. to repeat a sentence for each
        beam."""
        return dataclasses.replace(
            self,
            **{
                field.name: _select(
                    getattr(self, field.name), index, field.metadata.get("batch_dim", 0)
                )
                for field in dataclasses.fields(self)
            },
        )


def _select(value, index: torch.Tensor, dim: int):
    if isinstance(value, torch.Tensor):
        return value[index] if dim == 0 else value.index_select(dim, index)
    if isinstance(value, Batched):
        return value.select(index)
    if isinstance(value, (list, tuple)):
        return type(value)(_select(v, index, dim) for v in value)
    return value
