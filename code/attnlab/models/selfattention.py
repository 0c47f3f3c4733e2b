"""Self-attention layers, and a small model for experiments with positions and masks.

:class:`EncoderLayer` is the Transformer's encoder layer (Vaswani et al., 2017):
multi-head self-attention, then a position-wise feed-forward network, each
inside a residual connection with layer normalisation. Chapter 4 studies it in
:class:`SelfAttentionTagger`, which labels every input position with a token,
to measure what positional encodings and causal masks change; chapter 5's
Transformer stacks the same layer.

Shapes: B batch, S sequence length (the source, or the target for a language model), D
model width, h heads, V vocabulary size.
"""

from __future__ import annotations

import torch
from torch import nn

from attnlab.models.contract import Seq2SeqOutput, register
from attnlab.nn.layers import FeedForward, Residual, init_embedding
from attnlab.nn.masks import causal_mask, padding_mask
from attnlab.nn.multihead import MultiHeadAttention
from attnlab.nn.positions import LearnedPositionalEncoding, SinusoidalPositionalEncoding


class EncoderLayer(nn.Module):
    """Self-attention, then a feed-forward network; each sublayer inside a residual
    connection, normalised after the sum (post-norm, as in the paper) or before the
    sublayer (pre-norm)."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        norm_first: bool = False,
    ):
        super().__init__()
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.residual1 = Residual(d_model, dropout, norm_first)
        self.residual2 = Residual(d_model, dropout, norm_first)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, need_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, S, D) -> (B, S, D), and the (B, h, S, S) self-attention weights if asked
        for."""
        y = self.residual1.sublayer_input(x)
        out, weights = self.self_attention(
            query=y, key=y, value=y, mask=mask, need_weights=need_weights
        )
        x = self.residual1(x, out)
        out = self.feed_forward(self.residual2.sublayer_input(x))
        return self.residual2(x, out), weights


@register
class SelfAttentionTagger(nn.Module):
    """Embeddings (+ positions), encoder layers, and a label for every position.

    ``positions`` is ``"sinusoidal"``, ``"learned"`` or ``"none"``; ``causal``
    forbids each position to look at later ones; ``reads`` chooses the input
    of a batch: ``"src"`` (label each source position) or ``"tgt_in"`` (a
    language model: predict each next target token).
    """

    def __init__(
        self,
        vocab_size: int,
        out_size: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int = 256,
        dropout: float = 0.0,
        positions: str = "sinusoidal",
        causal: bool = False,
        reads: str = "src",
        max_len: int = 256,
        pad_id: int = 0,
    ):
        super().__init__()
        if positions not in ("sinusoidal", "learned", "none"):
            raise ValueError(
                "positions must be 'sinusoidal', "
                f"'learned' or 'none', got {positions!r}"
            )
        if reads not in ("src", "tgt_in"):
            raise ValueError(f"reads must be 'src' or 'tgt_in', got {reads!r}")
        self.embedding = init_embedding(
            nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        )
        encodings = {
            "sinusoidal": SinusoidalPositionalEncoding,
            "learned": LearnedPositionalEncoding,
        }
        self.positions = (
            encodings[positions](d_model, max_len) if positions != "none" else None
        )
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, num_heads, d_ff, dropout) for _ in range(num_layers)
        )
        self.out = nn.Linear(d_model, out_size)
        self.causal, self.reads, self.pad_id = causal, reads, pad_id

    def label(
        self,
        tokens: torch.Tensor,
        *,
        lengths: torch.Tensor | None = None,
        causal: bool | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, list]:
        """(B, S) ids -> (B, S, V) logits and each layer's weights (if asked for).

        ``lengths`` (B,) are the sentences' lengths, counted from the padding when not
        given. ``causal`` overrides the model's setting, e.g. to evaluate a model
        trained without the mask under the conditions of generation.
        """
        if lengths is None:
            lengths = (tokens != self.pad_id).sum(-1)
        mask = padding_mask(lengths, tokens.shape[1])  # (B, 1, S)
        if self.causal if causal is None else causal:
            mask = mask & causal_mask(tokens.shape[1], tokens.device)  # (B, S, S)
        x = self.embedding(tokens)
        if self.positions is not None:
            x = self.positions(x)
        weights = []
        for layer in self.layers:
            x, w = layer(x, mask, need_weights)
            weights.append(w)
        return self.out(x), weights

    def forward(
        self, *, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor
    ) -> Seq2SeqOutput:
        """Label every position of ``src`` (or of ``tgt_in``, as a language model): (B,
        S, V)."""
        if self.reads == "src":
            logits, _ = self.label(src, lengths=src_len)
        else:
            logits, _ = self.label(tgt_in)
        return Seq2SeqOutput(logits)
