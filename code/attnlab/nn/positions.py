"""Positional encodings: how a model that reads all positions at once learns their
order.

Attention treats its keys as a set; adding a vector that depends on the position
to every embedding tells the positions apart (Vaswani et al., 2017, section 3.5).

Shapes: B batch, T positions, D model width.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from attnlab.nn.layers import Dropout


class SinusoidalPositionalEncoding(nn.Module):
    """Vaswani et al.'s fixed encoding, added to the embeddings:
    P[t, 2i] = sin(t / 10000^(2i/D)), P[t, 2i+1] = cos(t / 10000^(2i/D))."""

    def __init__(self, d_model: int, max_len: int = 1024, dropout: float = 0.0):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
        frequency = torch.exp(
            -math.log(10000.0) * torch.arange(0, d_model, 2) / d_model
        )
        encoding = torch.zeros(max_len, d_model)
        encoding[:, 0::2] = torch.sin(position * frequency)
        encoding[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
        self.register_buffer("encoding", encoding, persistent=False)  # (max_len, D)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """(B, T, D) -> (B, T, D): x plus the encodings of positions offset .. offset +
        T - 1."""
        end = offset + x.shape[1]
        if end > self.encoding.shape[0]:
            raise ValueError(
                f"position {end - 1} is beyond max_len={self.encoding.shape[0]}"
            )
        return self.dropout(x + self.encoding[offset:end])


class LearnedPositionalEncoding(nn.Module):
    """A trained vector per position, added to the embeddings (a common alternative)."""

    def __init__(self, d_model: int, max_len: int = 1024, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=d_model**-0.5)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        end = offset + x.shape[1]
        if end > self.embedding.num_embeddings:
            raise ValueError(
                f"position {end - 1} is beyond max_len={self.embedding.num_embeddings}"
            )
        positions = torch.arange(offset, end, device=x.device)
        return self.dropout(x + self.embedding(positions))
