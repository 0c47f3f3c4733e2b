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
    nn.init.normal_(embedding.weight, std=embedding.embedding_dim**-0.5)
    if embedding.padding_idx is not None:
        with torch.no_grad():
            embedding.weight[embedding.padding_idx].zero_()
    return embedding


class Dropout(nn.Dropout):
    """``nn.Dropout``, with a cheaper random mask on a CPU.

    PyTorch's CPU dropout draws one random number per element, and drawing them was
    the largest cost of a Transformer training step after the matrix products (a fifth
    of chapter 5's step on 2 cores). Here 16 random bits decide each element, drawn 64
    at a time: an element is kept when its bits read as an integer at or above
    ``p`` of the way up their range, so with probability ``1 - p`` to within
    ``2**-16``, and kept elements are scaled by the inverse of that exact
    probability, so the output's expectation is the input. On other devices, and
    outside training, it is ``nn.Dropout``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        dropped = round(self.p * 65536)  # of the 65536 values of 16 bits
        if dropped == 65536:
            return x * 0.0
        words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(
            -(2**63), 2**63 - 1
        )  # all 64 bits random
        bits = words.view(torch.int16)[: x.numel()].view(x.shape)  # -32768..32767
        keep = bits >= dropped - 32768
        return x * keep * (65536 / (65536 - dropped))


class FeedForward(nn.Module):
    """Position-wise: the same two-layer network applied to every position, D -> d_ff ->
    D."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_model, d_ff),
            nn.ReLU(),
            Dropout(dropout),
            nn.Linear(d_ff, d_model),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Residual(nn.Module):
    """``x + sublayer(x)`` with layer normalisation after the sum (post-norm) or before
    the sublayer (pre-norm). A layer writes, for each sublayer::

        out = sublayer(residual.sublayer_input(x))
        x = residual(x, out)
    """

    def __init__(self, d_model: int, dropout: float, norm_first: bool):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)
        self.norm_first = norm_first

    def sublayer_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the sublayer reads: ``x`` normalised (pre-norm) or as it is."""
        return self.norm(x) if self.norm_first else x

    def forward(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``x`` plus the sublayer's output ``out`` (after dropout), normalised after
        the sum in post-norm."""
        x = x + self.dropout(out)
        return x if self.norm_first else self.norm(x)
