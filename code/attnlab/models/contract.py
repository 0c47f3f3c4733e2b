"""The contract every sequence-to-sequence model of the course honours.

A model is an ``nn.Module`` that

* is **registered** (:func:`register`): its constructor's arguments are kept
  in ``model.config``, so a checkpoint can rebuild it by class name;
* **trains** by teacher forcing: ``forward(*, src, src_len, tgt_in)`` returns
  a :class:`Seq2SeqOutput` (the logits, and the attention weights where the
  model has them);
* **generates** one token at a time, if it is a :class:`Generator`:
  ``encode(src, src_len)`` reads the source once into a *memory*, and
  ``decode_step(prev, memory, state)`` returns a :class:`Step` (the next
  token's logits, the new decoder *state*, the attention weights).

Memory and state are small dataclasses of tensors, one kind per model, each a
:class:`Batched`: ``select(index)`` picks batch rows, which is all that beam
search needs to follow its hypotheses. The trainer, greedy decoding, beam
search, the inspection tools, ``compare`` and the benchmarks rely on this
contract only.

Shapes: B batch, S source length, T target length, V target vocabulary.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from attnlab.nn.batched import Batched

MODELS: dict[str, type[nn.Module]] = {}
M = TypeVar("M", bound=type[nn.Module])


def register(cls: M) -> M:
    """Class decorator: record the constructor's arguments (defaults included) in
    ``self.config``, and let checkpoints rebuild the class by its name."""
    init = cls.__init__
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        init(self, *args, **kwargs)
        self.config = {
            name: value for name, value in bound.arguments.items() if name != "self"
        }

    cls.__init__ = __init__
    MODELS[cls.__name__] = cls
    return cls


@dataclasses.dataclass
class LayerWeights:
    """The attention weights of every layer and head of a Transformer, for inspection.

    Shapes: ``encoder[i]`` (B, h, S, S); ``decoder_self[i]`` (B, h, T, T);
    ``cross[i]`` (B, h, T, S); h heads, one list entry per layer.
    """

    encoder: list[torch.Tensor]
    decoder_self: list[torch.Tensor]
    cross: list[torch.Tensor]


@dataclasses.dataclass
class Seq2SeqOutput:
    """What ``forward`` returns, for every model."""

    logits: torch.Tensor  # (B, T, V)
    # (B, T, S): where each step looked in the source
    attention: torch.Tensor | None = None
    layers: LayerWeights | None = None  # every layer and head, when asked for


@dataclasses.dataclass
class Step:
    """What ``decode_step`` returns: one generated position for a batch."""

    logits: torch.Tensor  # (B, V) scores of the next token
    state: Batched  # the decoder's state after this step
    attention: torch.Tensor | None = None  # (B, S), for a model with attention


@runtime_checkable
class Seq2SeqModel(Protocol):
    """A model the trainer can train: teacher-forced logits from a batch's tensors."""

    config: dict

    def forward(
        self, *, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor
    ) -> Seq2SeqOutput: ...


@runtime_checkable
class Generator(Seq2SeqModel, Protocol):
    """A model that also generates: what greedy decoding and beam search call."""

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> Batched: ...

    def decode_step(
        self, prev: torch.Tensor, memory: Batched, state: Batched | None
    ) -> Step: ...
