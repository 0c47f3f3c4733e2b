"""A small self-attention model for experiments with positions and masks.

Stacks of self-attention blocks (multi-head attention and a feed-forward
network, each with a residual connection and layer normalisation) that label
every input position with a token: the building block chapter 5 turns into
the Transformer. Used here to measure what positional encodings and causal
masks change.

Shapes: B batch, L sequence length, D model width, V vocabulary size.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import causal_mask, padding_mask
from .checkpoints import register
from .multihead import LearnedPositionalEncoding, MultiHeadAttention, SinusoidalPositionalEncoding
from .rnn import init_embedding


class SelfAttentionBlock(nn.Module):
    """x + attention(x), normalised; then + feed-forward, normalised (post-norm, as in the paper)."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout),
                                          nn.Linear(d_ff, d_model))
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, L, D) -> (B, L, D), and the (B, H, L, L) weights if asked for."""
        attended, weights = self.attention(query=x, key=x, value=x, mask=mask,
                                           need_weights=need_weights)
        x = self.norm1(x + self.dropout(attended))
        return self.norm2(x + self.dropout(self.feed_forward(x))), weights


@register
class SelfAttentionTagger(nn.Module):
    """Embeddings (+ positions), self-attention blocks, and a label for every position.

    ``positions`` is ``"sinusoidal"``, ``"learned"`` or ``"none"``; ``causal``
    forbids each position to look at later ones; ``reads`` chooses the input
    of a batch: ``"src"`` (label each source position) or ``"tgt_in"`` (a
    language model: predict each next target token).
    """

    def __init__(self, vocab_size: int, out_size: int, d_model: int = 64, num_heads: int = 4,
                 num_layers: int = 2, d_ff: int = 256, dropout: float = 0.0,
                 positions: str = "sinusoidal", causal: bool = False, reads: str = "src",
                 max_len: int = 256, pad_id: int = 0):
        super().__init__()
        if positions not in ("sinusoidal", "learned", "none"):
            raise ValueError(f"positions must be 'sinusoidal', 'learned' or 'none', got {positions!r}")
        if reads not in ("src", "tgt_in"):
            raise ValueError(f"reads must be 'src' or 'tgt_in', got {reads!r}")
        self.config = dict(vocab_size=vocab_size, out_size=out_size, d_model=d_model,
                           num_heads=num_heads, num_layers=num_layers, d_ff=d_ff, dropout=dropout,
                           positions=positions, causal=causal, reads=reads, max_len=max_len,
                           pad_id=pad_id)
        self.embedding = init_embedding(nn.Embedding(vocab_size, d_model, padding_idx=pad_id))
        self.positions = {"sinusoidal": SinusoidalPositionalEncoding, "learned": LearnedPositionalEncoding,
                          "none": None}[positions]
        self.positions = self.positions(d_model, max_len) if self.positions else None
        self.blocks = nn.ModuleList(SelfAttentionBlock(d_model, num_heads, d_ff, dropout)
                                    for _ in range(num_layers))
        self.out = nn.Linear(d_model, out_size)
        self.causal, self.reads, self.pad_id = causal, reads, pad_id

    def encode(self, tokens: torch.Tensor, *, causal: bool | None = None,
               need_weights: bool = False) -> tuple[torch.Tensor, list]:
        """(B, L) ids -> (B, L, V) logits and each block's weights (if asked for).

        ``causal`` overrides the model's setting, e.g. to evaluate a model
        trained without the mask under the conditions of generation.
        """
        lengths = (tokens != self.pad_id).sum(-1)
        mask = padding_mask(lengths, tokens.shape[1])                        # (B, 1, L)
        if self.causal if causal is None else causal:
            mask = mask & causal_mask(tokens.shape[1], tokens.device)        # (B, L, L)
        x = self.embedding(tokens)
        if self.positions is not None:
            x = self.positions(x)
        weights = []
        for block in self.blocks:
            x, w = block(x, mask, need_weights)
            weights.append(w)
        return self.out(x), weights

    def forward(self, *, src: torch.Tensor, src_len: torch.Tensor,
                tgt_in: torch.Tensor) -> torch.Tensor:
        """Label every position of ``src`` (or of ``tgt_in``, as a language model): (B, L, V)."""
        logits, _ = self.encode(src if self.reads == "src" else tgt_in)
        return logits
