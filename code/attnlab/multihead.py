"""Multi-head attention and positional encodings: the Transformer's attention pieces.

Shapes: B batch, T queries, S keys, D model width, H heads, d_k = D / H.
Masks: True = may attend, broadcastable to (B, H, T, S): a (T, S) mask (e.g.
causal) applies to every sentence, a (B, T, S) or (B, 1, S) mask (e.g. from
:func:`attnlab.attention.padding_mask`) to each sentence its own.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import fused_attention, scaled_dot_product_attention


def _broadcastable(mask: torch.Tensor | None, batch: int, queries: int,
                   keys: int) -> torch.Tensor | None:
    """Bring a mask to 4 dimensions, (B or 1, 1, T or 1, S), without copying."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise TypeError(f"masks are boolean (True = may attend), got {mask.dtype}")
    if mask.dim() == 2:
        if mask.shape != (queries, keys):
            raise ValueError(f"a 2-D mask must be (T, S) = ({queries}, {keys}), got "
                             f"{tuple(mask.shape)}; give a padding mask as (B, 1, S)")
        return mask[None, None, :, :]                          # (T, S), e.g. causal
    if mask.dim() == 3:
        return mask[:, None, :, :]                             # (B, T, S) or (B, 1, S)
    if mask.dim() == 4:
        return mask
    raise ValueError(f"cannot use a mask of shape {tuple(mask.shape)}")


class MultiHeadAttention(nn.Module):
    """H attention heads in parallel, each on its own d_k-dimensional projections.

    ``fused=True`` computes the heads with ``F.scaled_dot_product_attention``
    (faster, and used when no weights are asked for); the explicit path is the
    one the book explains. Both give the same result.
    """

    def __init__(self, d_model: int, num_heads: int, *, dropout: float = 0.0, bias: bool = True,
                 fused: bool = True):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.num_heads, self.d_k, self.fused = num_heads, d_model // num_heads, fused
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, H, L, d_k)."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.d_k).transpose(1, 2)

    def forward(self, *, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query`` (B, T, D) to ``key``/``value`` (B, S, D).

        Returns the output (B, T, D) and, if ``need_weights``, the per-head
        weights (B, H, T, S); otherwise ``None``.
        """
        q, k, v = self.split_heads(self.W_q(query)), self.split_heads(self.W_k(key)), \
            self.split_heads(self.W_v(value))                          # (B, H, L, d_k)
        return self.attend(q, k, v, mask=mask, need_weights=need_weights)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
               mask: torch.Tensor | None = None,
               need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The attention itself, on projections already split into heads, (B, H, L, d_k):
        the entry point for cached keys and values during incremental decoding."""
        batch, _, queries, _ = q.shape
        mask = _broadcastable(mask, batch, queries, k.shape[2])
        dropout = self.dropout if self.training else 0.0
        if self.fused and not need_weights:
            heads, weights = fused_attention(q, k, v, mask, dropout=dropout), None
        else:
            heads, weights = scaled_dot_product_attention(q, k, v, mask)
            if dropout:
                heads = nn.functional.dropout(weights, dropout) @ v
        # (B, H, T, d_k) -> (B, T, H * d_k)
        heads = heads.transpose(1, 2).reshape(batch, queries, self.num_heads * self.d_k)
        return self.W_o(heads), weights


class SinusoidalPositionalEncoding(nn.Module):
    """Vaswani et al.'s fixed encoding, added to the embeddings:
    P[t, 2i] = sin(t / 10000^(2i/D)), P[t, 2i+1] = cos(t / 10000^(2i/D))."""

    def __init__(self, d_model: int, max_len: int = 1024, dropout: float = 0.0):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32)[:, None]            # (L, 1)
        frequency = torch.exp(-math.log(10000.0) * torch.arange(0, d_model, 2) / d_model)
        encoding = torch.zeros(max_len, d_model)
        encoding[:, 0::2] = torch.sin(position * frequency)
        encoding[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
        self.register_buffer("encoding", encoding, persistent=False)             # (L, D)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """(B, T, D) -> (B, T, D): x plus the encodings of positions offset .. offset + T - 1."""
        end = offset + x.shape[1]
        if end > self.encoding.shape[0]:
            raise ValueError(f"position {end - 1} is beyond max_len={self.encoding.shape[0]}")
        return self.dropout(x + self.encoding[offset:end])


class LearnedPositionalEncoding(nn.Module):
    """A trained vector per position, added to the embeddings (a common alternative)."""

    def __init__(self, d_model: int, max_len: int = 1024, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=d_model ** -0.5)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        end = offset + x.shape[1]
        if end > self.embedding.num_embeddings:
            raise ValueError(f"position {end - 1} is beyond max_len={self.embedding.num_embeddings}")
        positions = torch.arange(offset, end, device=x.device)
        return self.dropout(x + self.embedding(positions))
