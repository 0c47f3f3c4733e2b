"""Masks, with one polarity and one meaning of each shape everywhere in the course.

True = may attend (or: counts), as in
``torch.nn.functional.scaled_dot_product_attention``. An attention mask is anything that
broadcasts to the scores, (B, T, S):

* (T, S): the same for every sentence, e.g. :func:`causal_mask`;
* (B, 1, S): each sentence its own keys, the same for every query, e.g.
:func:`padding_mask`;
* (B, T, S): each sentence and query its own, e.g. the two combined.

A 2-D mask therefore always means (T, S); a padding mask is (B, 1, S), never (B, S).
Multi-head attention adds the heads' axis with :func:`for_heads`.
"""

from __future__ import annotations

import torch


def length_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """(B,) lengths -> (B, size) bool, True at the positions ``< length``: which tokens
    of a padded batch are real (e.g. which target positions count in the loss)."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


def padding_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """(B,) key lengths -> (B, 1, S) mask, True at real positions; broadcasts over
    queries."""
    return length_mask(lengths, size)[:, None, :]


def causal_mask(size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(T, T) mask, True where query t may attend to key s <= t (no look-ahead)."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


def check(mask: torch.Tensor | None, queries: int, keys: int) -> torch.Tensor | None:
    """``mask`` unchanged if it is a boolean (T, S), (B, 1, S) or (B, T, S) mask for
    ``queries`` x ``keys`` scores; otherwise an error that says what it should be."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise TypeError(f"masks are boolean (True = may attend), got {mask.dtype}")
    if mask.dim() == 2 and mask.shape != (queries, keys):
        raise ValueError(
            f"a 2-D mask is (T, S) = ({queries}, {keys}), "
            f"got {tuple(mask.shape)}; give a padding mask as "
            "(B, 1, S) (see masks.padding_mask)"
        )
    if (
        mask.dim() not in (2, 3)
        or mask.shape[-1] != keys
        or mask.shape[-2] not in (1, queries)
    ):
        raise ValueError(
            f"cannot use a mask of shape {tuple(mask.shape)} "
            f"for {queries} queries and {keys} keys: it "
            "must be (T, S), (B, 1, S) or (B, T, S)"
        )
    return mask


def for_heads(mask: torch.Tensor | None) -> torch.Tensor | None:
    """A checked attention mask with the heads' axis added: (B or 1, 1, T or 1, S)."""
    if mask is None:
        return None
    return mask[None, None] if mask.dim() == 2 else mask[:, None]
