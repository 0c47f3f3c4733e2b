"""Attention: scores -> masked softmax -> weights -> a weighted sum of the values.

Bahdanau, Cho and Bengio (2015) score each encoder state (a *key*) against the
decoder's previous state (the *query*) with a small feed-forward network,

    e_j = v^T tanh(W_q q + W_k k_j),

turn the scores into weights ``alpha = softmax(e)`` over the source positions,
and form the context ``c = sum_j alpha_j v_j`` from the *values* (the encoder
states again). Masks as everywhere (see :mod:`attnlab.nn.masks`): True = may
attend; (T, S), (B, 1, S) or (B, T, S).

Shapes: B batch, T queries (target steps), S keys (source positions),
D_q / D_k / D_v query / key / value sizes, A the attention's hidden size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.nn import masks


def masked_softmax(
    scores: torch.Tensor, mask: torch.Tensor | None, *, temperature: float = 1.0
) -> torch.Tensor:
    """Softmax over the last axis that gives exactly zero weight where ``mask`` is
    False.

    Shapes:
        scores: (..., S); mask: broadcastable to scores, True = may attend.
    A temperature above 1 flattens the weights, below 1 sharpens them.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    scores = scores / temperature
    if mask is None:
        return torch.softmax(scores, dim=-1)
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    # finfo.min keeps a fully masked row finite; the product zeroes it exactly.
    return torch.softmax(scores, dim=-1) * mask


class AdditiveAttention(nn.Module):
    """Bahdanau's additive attention, ``e = v^T tanh(W_q q + W_k k)``.

    The key projections ``W_k k`` depend only on the source: compute them once
    with :meth:`project_keys` and pass them to every decoding step.
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int):
        super().__init__()
        self.W_q = nn.Linear(query_size, hidden_size, bias=False)
        self.W_k = nn.Linear(key_size, hidden_size, bias=False)
        self.v = nn.Linear(hidden_size, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """(B, S, D_k) -> (B, S, A): the part of the scores that does not change during
        decoding."""
        return self.W_k(keys)

    def scores(self, query: torch.Tensor, projected_keys: torch.Tensor) -> torch.Tensor:
        """Alignment scores e: (B, T, D_q) queries against (B, S, A) projected keys ->
        (B, T, S)."""
        features = torch.tanh(
            self.W_q(query)[:, :, None, :] + projected_keys[:, None, :, :]
        )
        return self.v(features).squeeze(-1)  # (B, T, S, A) -> (B, T, S)

    def forward(
        self,
        *,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        projected_keys: torch.Tensor | None = None,
        temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend from each query to the keys, and return the contexts and the weights.

        Shapes:
            query: (B, T, D_q); key: (B, S, D_k); value: (B, S, D_v);
            mask: (B, 1, S), (B, T, S) or (T, S), True = may attend.
            returns context: (B, T, D_v) and weights alpha: (B, T, S).
        """
        if projected_keys is None:
            projected_keys = self.project_keys(key)
        e = self.scores(query, projected_keys)  # (B, T, S)
        alpha = masked_softmax(
            e, masks.check(mask, *e.shape[1:]), temperature=temperature
        )
        return alpha @ value, alpha  # (B, T, S) @ (B, S, D_v)


# --- scoring functions behind one interface -------------------------------------------
# Each maps queries (B, T, D_q) and keys (B, S, D_k) to scores (B, T, S).


class DotScore(nn.Module):
    """Luong et al.'s "dot" score, ``e = q . k`` (needs D_q == D_k)."""

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return query @ key.transpose(-2, -1)  # (B, T, D) @ (B, D, S)


class ScaledDotScore(nn.Module):
    """Vaswani et al.'s score, ``e = q . k / sqrt(d_k)``: the dot product, kept at unit
    scale."""

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return query @ key.transpose(-2, -1) / math.sqrt(key.shape[-1])


class GeneralScore(nn.Module):
    """Luong et al.'s "general" (bilinear) score, ``e = q^T W k``."""

    def __init__(self, query_size: int, key_size: int):
        super().__init__()
        self.W = nn.Linear(key_size, query_size, bias=False)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return query @ self.W(key).transpose(-2, -1)  # (B, T, D_q) @ (B, D_q, S)


class AdditiveScore(nn.Module):
    """Bahdanau's score, ``e = v^T tanh(W_q q + W_k k)`` (see
    :class:`AdditiveAttention`)."""

    def __init__(self, query_size: int, key_size: int, hidden_size: int):
        super().__init__()
        self.attention = AdditiveAttention(query_size, key_size, hidden_size)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return self.attention.scores(query, self.attention.project_keys(key))


class ScoredAttention(nn.Module):
    """Attention with any score: scores -> masked softmax -> weighted sum of the
    values."""

    def __init__(self, score: nn.Module):
        super().__init__()
        self.score = score

    def forward(
        self,
        *,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D_q), (B, S, D_k), (B, S, D_v), mask (B, 1, S), (B, T, S) or (T, S) ->
        context (B, T, D_v), weights (B, T, S)."""
        e = self.score(query, key)  # (B, T, S)
        alpha = masked_softmax(e, masks.check(mask, *e.shape[1:]))
        return alpha @ value, alpha


# --- scaled dot-product attention: the teaching path and the fast path ----------------


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T / sqrt(d_k)) V, written out.

    Shapes:
        query: (..., T, d_k); key: (..., S, d_k); value: (..., S, d_v);
        mask: broadcastable to (..., T, S), True = may attend.
        returns output (..., T, d_v) and weights (..., T, S).
    ``dropout`` (in training) drops weights before they weigh the values; the weights
    returned are those the output was made with.
    """
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])  # (..., T, S)
    weights = masked_softmax(scores, mask)
    if dropout:
        weights = F.dropout(weights, dropout)
    return weights @ value, weights


def fused_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout: float = 0.0,
    *,
    causal: bool = False,
) -> torch.Tensor:
    """The same computation through ``torch.nn.functional.scaled_dot_product_attention``
    (one fused kernel, no weights returned). Same mask polarity: True = may attend.
    ``causal=True`` (queries and keys the same T positions) stands for the causal mask
    without one: the kernel skips the masked half, and a GPU can take its
    flash-attention path, which an explicit mask rules out."""
    return F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, dropout_p=dropout, is_causal=causal
    )
