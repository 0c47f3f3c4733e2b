"""Multi-head attention: the Transformer's attention.

Shapes: B batch, T queries, S keys, D model width, h heads, d_k = D / h.
Masks as everywhere (see :mod:`attnlab.nn.masks`): True = may attend, (T, S),
(B, 1, S) or (B, T, S); the heads share them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from attnlab.nn import masks
from attnlab.nn.attention import fused_attention, scaled_dot_product_attention
from attnlab.nn.batched import Batched


@dataclass
class KeyValue(Batched):
    """Keys and values already projected and split into heads, (B, h, S, d_k) each: what
    an attention may attend to. Computed once per sentence for the encoder's output, and
    grown by one position per generated token for a decoder's self-attention (a
    key/value cache)."""

    key: torch.Tensor
    value: torch.Tensor

    def extend(self, new: "KeyValue") -> "KeyValue":
        """These positions followed by ``new``'s, along the keys' axis."""
        return KeyValue(
            torch.cat([self.key, new.key], dim=2),
            torch.cat([self.value, new.value], dim=2),
        )


class MultiHeadAttention(nn.Module):
    """h attention heads in parallel, each on its own d_k-dimensional projections.

    ``fused=True`` computes the heads with ``F.scaled_dot_product_attention``
    (faster, and used when no weights are asked for); the explicit path is the
    one the book explains. Both give the same result.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        fused: bool = True,
    ):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(
                f"d_model={d_model} is not divisible by num_heads={num_heads}"
            )
        self.num_heads, self.d_k, self.fused = num_heads, d_model // num_heads, fused
        self.W_q = nn.Linear(d_model, d_model, bias=bias)
        self.W_k = nn.Linear(d_model, d_model, bias=bias)
        self.W_v = nn.Linear(d_model, d_model, bias=bias)
        self.W_o = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, D) -> (B, h, S, d_k) (queries: T for S)."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.d_k).transpose(1, 2)

    def project(self, *, key: torch.Tensor, value: torch.Tensor) -> KeyValue:
        """Keys and values (B, S, D) -> their projections split into heads: the part of
        the attention that does not depend on the queries, computed once and reused."""
        return KeyValue(
            self.split_heads(self.W_k(key)), self.split_heads(self.W_v(value))
        )

    def forward(
        self,
        *,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        projected: KeyValue | None = None,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query`` (B, T, D) to ``key``/``value`` (B, S, D), or to keys
        and values already ``projected`` (see :meth:`project`).

        Returns the output (B, T, D) and, if ``need_weights``, the per-head
        weights (B, h, T, S); otherwise ``None``.
        """
        q = self.split_heads(self.W_q(query))  # (B, h, T, d_k)
        if projected is None:
            projected = self.project(key=key, value=value)
        return self.attend(
            q, projected.key, projected.value, mask=mask, need_weights=need_weights
        )

    def self_attend(
        self,
        x: torch.Tensor,
        *,
        cache: KeyValue | None = None,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        need_weights: bool = False,
    ):
        """Self-attention of ``x`` (B, T, D), extending a key/value ``cache`` of the
        positions before it when generating. Returns the output (B, T, D), the weights
        (or ``None``), and the keys and values, cache included: the next cache."""
        q = self.split_heads(self.W_q(x))  # (B, h, T, d_k)
        projected = self.project(key=x, value=x)
        if cache is not None:
            projected = cache.extend(projected)  # (B, h, t, d_k)
        out, weights = self.attend(
            q,
            projected.key,
            projected.value,
            mask=mask,
            causal=causal,
            need_weights=need_weights,
        )
        return out, weights, projected

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention on projections already split into heads, (B, h, T or S, d_k).
        ``causal=True``: each of T queries sees the keys up to its own position (T = S),
        in place of a mask. In training the weights returned are after dropout: the
        weights the output was made with."""
        batch, _, queries, _ = q.shape
        if causal and (mask is not None or k.shape[2] != queries):
            raise ValueError(
                f"causal attention is over the same positions (T = S) and "
                f"takes no mask; got T={queries}, S={k.shape[2]}"
                + (" and a mask" if mask is not None else "")
            )
        dropout = self.dropout if self.training else 0.0
        fused = self.fused and not need_weights
        if causal and not fused:
            mask = masks.causal_mask(queries, q.device)  # (T, T)
        # (B or 1, 1, T or 1, S)
        mask = masks.for_heads(masks.check(mask, queries, k.shape[2]))
        if fused:
            heads = fused_attention(q, k, v, mask, dropout, causal=causal)
            weights = None
        else:
            heads, weights = scaled_dot_product_attention(q, k, v, mask, dropout)
        # (B, h, T, d_k) -> (B, T, h * d_k)
        heads = heads.transpose(1, 2).reshape(batch, queries, self.num_heads * self.d_k)
        return self.W_o(heads), weights
