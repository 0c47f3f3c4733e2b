"""The Transformer of Vaswani et al. (2017), built from the pieces of chapter 4.

The encoder stacks chapter 4's :class:`~attnlab.models.selfattention.EncoderLayer`.
What is new here is the decoder layer: causal self-attention, attention to the
encoder's output (cross-attention), feed-forward, each in the same residual
connection. Generation is incremental: each decoder layer keeps the keys and
values of the tokens already written (a key/value cache, :class:`KeyValue`),
and the encoder-side keys and values are projected once per sentence.

Shapes: B batch, S source length, T target length, D model width, h heads,
N layers, d_k = D / h, V vocabulary size.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

import torch
from torch import nn

from attnlab.models.contract import LayerWeights, Seq2SeqOutput, Step, register
from attnlab.models.selfattention import EncoderLayer
from attnlab.nn.batched import Batched
from attnlab.nn.layers import FeedForward, Residual, init_embedding
from attnlab.nn.masks import padding_mask
from attnlab.nn.multihead import KeyValue, MultiHeadAttention
from attnlab.nn.positions import SinusoidalPositionalEncoding


class DecoderLayer(nn.Module):
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
        self.cross_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.residuals = nn.ModuleList(
            Residual(d_model, dropout, norm_first) for _ in range(3)
        )

    def forward(
        self,
        y: torch.Tensor,
        memory: KeyValue,
        memory_mask: torch.Tensor,
        *,
        cache: KeyValue | None = None,
        need_weights: bool = False,
    ):
        """(B, T, D) decoder states -> (B, T, D), the self-attention's keys and values,
        and the weights of both attentions (if asked for).

        ``memory`` holds the cross-attention's keys and values of the encoder's output.
        Without a ``cache`` the self-attention is causal over the T positions. With one
        (incremental decoding, T = 1), the new token's keys and values follow those of
        the earlier tokens, and no causal mask is needed: the cache holds only the
        past. The keys and values returned are the next step's cache.
        """

        attend, cross, feed = self.residuals
        out, self_weights, projected = self.self_attention.self_attend(
            attend.sublayer_input(y),
            cache=cache,
            causal=cache is None,
            need_weights=need_weights,
        )
        y = attend(y, out)
        out, cross_weights = self.cross_attention(
            query=cross.sublayer_input(y),
            projected=memory,
            mask=memory_mask,
            need_weights=need_weights,
        )
        y = cross(y, out)
        y = feed(y, self.feed_forward(feed.sublayer_input(y)))
        return y, projected, (self_weights, cross_weights)


@dataclass
class EncodedSource(Batched):
    """What the encoder passes on to every decoding step."""

    output: torch.Tensor  # (B, S, D): the encoder's output
    mask: torch.Tensor  # (B, 1, S): True at real source positions
    memory: list[KeyValue]  # per decoder layer: its cross-attention's K and V
    weights: list  # per encoder layer: (B, h, S, S), if asked for


@dataclass
class DecoderCache(Batched):
    """The decoding state: tokens written so far, and each layer's key/value cache."""

    step: int
    layers: list[KeyValue | None]


@register
class Transformer(nn.Module):
    """The encoder-decoder Transformer: embeddings scaled by sqrt(D) plus sinusoidal
    positions, N encoder layers, N decoder layers, a linear layer over the target
    vocabulary (optionally tied to the target embeddings)."""

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int = 512,
        dropout: float = 0.1,
        norm_first: bool = False,
        tie_embeddings: bool = False,
        max_len: int = 256,
        pad_id: int = 0,
    ):
        super().__init__()
        self.src_embedding = nn.Embedding(src_vocab, d_model, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(tgt_vocab, d_model, padding_idx=pad_id)
        for embedding in (self.src_embedding, self.tgt_embedding):
            # N(0, 1/D), so that the sqrt(D) scaling gives unit scale
            init_embedding(embedding)
        self.positions = SinusoidalPositionalEncoding(d_model, max_len, dropout)
        self.encoder = nn.ModuleList(
            EncoderLayer(d_model, num_heads, d_ff, dropout, norm_first)
            for _ in range(num_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderLayer(d_model, num_heads, d_ff, dropout, norm_first)
            for _ in range(num_layers)
        )
        # Pre-norm leaves the residual stream unnormalised: one final norm on each side.
        self.encoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.out = nn.Linear(d_model, tgt_vocab)
        if tie_embeddings:
            self.out.weight = self.tgt_embedding.weight
        self.scale, self.pad_id = math.sqrt(d_model), pad_id

    def encode(
        self, src: torch.Tensor, src_len: torch.Tensor, *, need_weights: bool = False
    ) -> EncodedSource:
        """The encoder's output, its mask, and each decoder layer's cross-attention keys
        and values, projected once per sentence."""
        mask = padding_mask(src_len, src.shape[1])  # (B, 1, S)
        x = self.positions(self.src_embedding(src) * self.scale)
        weights = []
        for layer in self.encoder:
            x, w = layer(x, mask, need_weights)
            weights.append(w)
        output = self.encoder_norm(x)
        return EncodedSource(
            output,
            mask,
            [
                layer.cross_attention.project(key=output, value=output)
                for layer in self.decoder
            ],
            weights,
        )

    def decode(
        self,
        tgt: torch.Tensor,
        source: EncodedSource,
        *,
        cache: DecoderCache | None = None,
        weights_of: Collection[int] = (),
    ):
        """The decoder stack on ``tgt`` (B, T): logits (B, T, V), the new cache, and
        each layer's (self, cross) weights. Without a ``cache`` ``tgt`` is the whole
        prefix (causal mask); with one, the next token(s). Only the layers numbered in
        ``weights_of`` compute their weights (the others take the fused path and give
        ``None``)."""
        offset = cache.step if cache is not None else 0
        y = self.positions(self.tgt_embedding(tgt) * self.scale, offset=offset)
        weights, caches = [], []
        for i, layer in enumerate(self.decoder):
            y, projected, w = layer(
                y,
                source.memory[i],
                source.mask,
                cache=cache.layers[i] if cache is not None else None,
                need_weights=i in weights_of,
            )
            weights.append(w)
            caches.append(projected)
        logits = self.out(self.decoder_norm(y))
        return logits, DecoderCache(offset + tgt.shape[1], caches), weights

    def decode_step(
        self, prev: torch.Tensor, memory: EncodedSource, state: DecoderCache | None
    ) -> Step:
        """One token with the key/value cache: (B,) -> (B, V) logits, the new cache, and
        the last layer's cross-attention weights averaged over heads, (B, S)."""
        state = (
            state if state is not None else DecoderCache(0, [None] * len(self.decoder))
        )
        last = len(self.decoder) - 1
        logits, state, weights = self.decode(
            prev[:, None], memory, cache=state, weights_of=(last,)
        )
        cross = weights[-1][1][:, :, 0].mean(1)  # (B, S)
        return Step(logits[:, 0], state, cross)

    def forward(
        self,
        *,
        src: torch.Tensor,
        src_len: torch.Tensor,
        tgt_in: torch.Tensor,
        need_weights: bool = False,
    ) -> Seq2SeqOutput:
        """(B, S), (B,), (B, T) -> (B, T, V) logits; with ``need_weights``, also every
        layer's weights, and the last layer's cross-attention averaged over heads as
        ``attention``."""
        source = self.encode(src, src_len, need_weights=need_weights)
        every = range(len(self.decoder)) if need_weights else ()
        logits, _, weights = self.decode(tgt_in, source, weights_of=every)
        if not need_weights:
            return Seq2SeqOutput(logits)
        layers = LayerWeights(
            encoder=source.weights,
            decoder_self=[w[0] for w in weights],
            cross=[w[1] for w in weights],
        )
        return Seq2SeqOutput(logits, attention=layers.cross[-1].mean(1), layers=layers)
