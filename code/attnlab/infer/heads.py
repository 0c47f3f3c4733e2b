"""Switching a Transformer's heads off, to see what each one does for a translation.

A head is switched off as Michel et al. (2019) mask heads: its output is
multiplied by 0 before the attention's output projection ``W_o`` (its ``d_k`` columns
of the concatenated heads), so it adds nothing to the layer; its weights are still
computed, and still shown. A mask gives each head of each kind of attention and each
layer a factor, 1 (on) or 0 (off):

    mask (3, L, h), the kinds in the order of
    :data:`attnlab.infer.inspection.ATTENTION_KINDS` (encoder self-attention, decoder
    self-attention, cross-attention)

:func:`heads_off` applies one to a model for the time of a ``with`` block, by forward
pre-hooks on the ``W_o`` projections: the model's code is the same, and with every head
on it computes exactly what it computes without the hooks. The browser export uses it
too, with the mask as an input of the graph (:mod:`attnlab.web.export`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from attnlab.infer.inspection import ATTENTION_KINDS
from attnlab.models.transformer import Transformer
from attnlab.nn.multihead import MultiHeadAttention


def attention_modules(model: Transformer) -> dict[str, list[MultiHeadAttention]]:
    """Each kind's attention modules, layer by layer, keyed by the kind's output name
    (``encoder``, ``decoder_self``, ``cross``)."""
    if not isinstance(model, Transformer):
        raise TypeError(
            f"heads can be switched off in a Transformer, not a {type(model).__name__}"
        )
    modules = {
        "encoder": [layer.self_attention for layer in model.encoder],
        "decoder_self": [layer.self_attention for layer in model.decoder],
        "cross": [layer.cross_attention for layer in model.decoder],
    }
    return {kind.output: modules[kind.output] for kind in ATTENTION_KINDS}


def mask_shape(model: Transformer) -> tuple[int, int, int]:
    """(kinds, layers, heads) of a head mask for ``model``."""
    modules = attention_modules(model)
    layers = {len(m) for m in modules.values()}
    heads = {a.num_heads for m in modules.values() for a in m}
    if len(layers) != 1 or len(heads) != 1:
        raise ValueError(
            "a head mask needs as many layers and heads for every kind of attention; "
            f"this model has layers {sorted(layers)} and heads {sorted(heads)}"
        )
    return len(modules), layers.pop(), heads.pop()


def all_on(model: Transformer) -> torch.Tensor:
    """The mask that switches no head off."""
    return torch.ones(mask_shape(model))


def mask_of(model: Transformer, off: list[tuple[str, int, int]]) -> torch.Tensor:
    """The mask with the heads ``off`` switched off: (kind's output name, layer, head),
    counted from 0."""
    mask = all_on(model)
    names = [kind.output for kind in ATTENTION_KINDS]
    for kind, layer, head in off:
        if kind not in names:
            raise ValueError(f"no kind of attention {kind!r}: one of {names}")
        mask[names.index(kind), layer, head] = 0.0
    return mask


@contextmanager
def heads_off(model: Transformer, mask: torch.Tensor) -> Iterator[Transformer]:
    """Within the block, ``model`` computes with each head's output scaled by its entry
    of ``mask`` (3, L, h): 0 switches the head off, 1 leaves it as it is."""
    expected = mask_shape(model)
    if tuple(mask.shape) != expected:
        raise ValueError(
            f"the head mask is {tuple(mask.shape)}, this model needs {expected} "
            "(kinds, layers, heads)"
        )
    handles = []
    for k, modules in enumerate(attention_modules(model).values()):
        for layer, attention in enumerate(modules):
            # the factor of each of the D columns of the concatenated heads
            columns = mask[k, layer][:, None].expand(-1, attention.d_k).reshape(-1)

            def scale(module, args, columns=columns):
                (heads,) = args  # (B, T, h * d_k)
                return (heads * columns.to(heads.dtype),)

            handles.append(attention.W_o.register_forward_pre_hook(scale))
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()
