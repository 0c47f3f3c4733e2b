"""Building blocks shared by the models: embeddings, the feed-forward network, the
residual connection. Each is written once, here, and used wherever a model needs it.

Shapes: B batch, S positions (or T on the target side), D width, d_ff the feed-forward
width.
"""

from __future__ import annotations

import torch
from torch import nn


def init_embedding(embedding: nn.Embedding) -> nn.Embedding:
    """N(0, 1/D) initialisation, keeping the padding row at zero.

    PyTorch's default N(0, 1) would drown a positional encoding added to the
    embeddings once they are scaled by sqrt(D), as the Transformer does.
    """
    nn.init.normal_(embedding.weight, std=embedding.embedding_dim ** -0.5)
    if embedding.padding_idx is not None:
        with torch.no_grad():
            embedding.weight[embedding.padding_idx].zero_()
    return embedding


class FeedForward(nn.Module):
    """Position-wise: the same two-layer network applied to every position, D -> d_ff ->
    D."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(),
                                 nn.Dropout(dropout), nn.Linear(d_ff, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Residual(nn.Module):
    """``x + sublayer(x)`` with layer normalisation after the sum (post-norm) or before
    the sublayer (pre-norm)."""

    def __init__(self, d_model: int, dropout: float, norm_first: bool):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: torch.Tensor, sublayer) -> tuple[torch.Tensor, object]:
        """``sublayer`` returns (output, extra); the extra (attention weights) is passed
        on."""
        out, extra = sublayer(self.norm(x) if self.norm_first else x)
        x = x + self.dropout(out)
        return (x if self.norm_first else self.norm(x)), extra
