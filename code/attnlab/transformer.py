"""The Transformer of Vaswani et al. (2017), built from the pieces of chapter 4.

Encoder layer: self-attention, then a position-wise feed-forward network, each
inside a residual connection with layer normalisation (after the sum,
"post-norm", as in the paper; or before the sublayer, "pre-norm"). Decoder
layer: causal self-attention, attention to the encoder's output, feed-forward.
Generation is incremental: each decoder layer keeps the keys and values of the
tokens already written (a key/value cache), and the encoder-side keys and
values are projected once per sentence.

Shapes: B batch, S source length, T target length, D model width, H heads,
d_k = D / H, V vocabulary size.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import causal_mask, padding_mask
from .checkpoints import register
from .multihead import MultiHeadAttention, SinusoidalPositionalEncoding


class FeedForward(nn.Module):
    """Position-wise: the same two-layer network applied to every position, D -> d_ff -> D."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(d_ff, d_model))

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
        """``sublayer`` returns (output, extra); the extra (attention weights) is passed on."""
        out, extra = sublayer(self.norm(x) if self.norm_first else x)
        x = x + self.dropout(out)
        return (x if self.norm_first else self.norm(x)), extra


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 norm_first: bool = False):
        super().__init__()
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.residual1 = Residual(d_model, dropout, norm_first)
        self.residual2 = Residual(d_model, dropout, norm_first)

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, S, D) -> (B, S, D), and the (B, H, S, S) self-attention weights if asked for."""
        x, weights = self.residual1(x, lambda y: self.self_attention(
            query=y, key=y, value=y, mask=mask, need_weights=need_weights))
        x, _ = self.residual2(x, lambda y: (self.feed_forward(y), None))
        return x, weights


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 norm_first: bool = False):
        super().__init__()
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.cross_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.residuals = nn.ModuleList(Residual(d_model, dropout, norm_first) for _ in range(3))

    def memory_heads(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder-side keys and values of the cross-attention, (B, H, S, d_k) each:
        computed once per sentence."""
        attention = self.cross_attention
        return attention.split_heads(attention.W_k(memory)), attention.split_heads(attention.W_v(memory))

    def forward(self, y: torch.Tensor, memory_kv: tuple[torch.Tensor, torch.Tensor],
                memory_mask: torch.Tensor, *, self_mask: torch.Tensor | None = None,
                cache: dict | None = None, need_weights: bool = False) -> tuple[torch.Tensor, dict]:
        """(B, T, D) decoder states -> (B, T, D).

        With a ``cache`` (incremental decoding, T = 1), the new token's keys and
        values are appended to those of the earlier tokens, and the causal mask is
        unnecessary: the cache holds only the past.
        """
        def self_attend(z):
            attention = self.self_attention
            q, k, v = (attention.split_heads(w(z)) for w in (attention.W_q, attention.W_k, attention.W_v))
            if cache is not None:
                if "k" in cache:
                    k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
                cache["k"], cache["v"] = k, v                        # (B, H, t, d_k)
            return attention.attend(q, k, v, mask=self_mask, need_weights=need_weights)

        def cross_attend(z):
            attention = self.cross_attention
            q = attention.split_heads(attention.W_q(z))
            return attention.attend(q, *memory_kv, mask=memory_mask, need_weights=need_weights)

        y, self_weights = self.residuals[0](y, self_attend)
        y, cross_weights = self.residuals[1](y, cross_attend)
        y, _ = self.residuals[2](y, lambda z: (self.feed_forward(z), None))
        return y, {"self": self_weights, "cross": cross_weights}


@register
class Transformer(nn.Module):
    """The encoder-decoder Transformer: embeddings scaled by sqrt(D) plus sinusoidal
    positions, N encoder layers, N decoder layers, a linear layer over the target
    vocabulary (optionally tied to the target embeddings)."""

    def __init__(self, src_vocab: int, tgt_vocab: int, d_model: int = 128, num_heads: int = 4,
                 num_layers: int = 2, d_ff: int = 512, dropout: float = 0.1,
                 norm_first: bool = False, tie_embeddings: bool = False, max_len: int = 256,
                 pad_id: int = 0):
        super().__init__()
        self.config = dict(src_vocab=src_vocab, tgt_vocab=tgt_vocab, d_model=d_model,
                           num_heads=num_heads, num_layers=num_layers, d_ff=d_ff, dropout=dropout,
                           norm_first=norm_first, tie_embeddings=tie_embeddings, max_len=max_len,
                           pad_id=pad_id)
        self.src_embedding = nn.Embedding(src_vocab, d_model, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(tgt_vocab, d_model, padding_idx=pad_id)
        for embedding in (self.src_embedding, self.tgt_embedding):
            # N(0, 1/D): after the sqrt(D) scaling the embeddings have unit scale, like the positions.
            nn.init.normal_(embedding.weight, std=d_model ** -0.5)
            with torch.no_grad():
                embedding.weight[pad_id].zero_()
        self.positions = SinusoidalPositionalEncoding(d_model, max_len, dropout)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, num_heads, d_ff, dropout, norm_first)
                                     for _ in range(num_layers))
        self.decoder = nn.ModuleList(DecoderLayer(d_model, num_heads, d_ff, dropout, norm_first)
                                     for _ in range(num_layers))
        # Pre-norm leaves the residual stream unnormalised: one final norm on each side.
        self.encoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.out = nn.Linear(d_model, tgt_vocab)
        if tie_embeddings:
            self.out.weight = self.tgt_embedding.weight
        self.scale, self.pad_id = math.sqrt(d_model), pad_id

    def encode(self, src: torch.Tensor, src_len: torch.Tensor, *,
               need_weights: bool = False) -> dict:
        """Encoder output (B, S, D), its mask, and each decoder layer's cross-attention
        keys and values, projected once per sentence."""
        mask = padding_mask(src_len, src.shape[1])                          # (B, 1, S)
        x = self.positions(self.src_embedding(src) * self.scale)
        weights = []
        for layer in self.encoder:
            x, w = layer(x, mask, need_weights)
            weights.append(w)
        memory = self.encoder_norm(x)
        return {"memory": memory, "mask": mask,
                "kv": [layer.memory_heads(memory) for layer in self.decoder],
                "weights": weights}

    def _decode(self, tgt: torch.Tensor, encoded: dict, *, offset: int = 0,
                caches: list | None = None, need_weights: bool | str = False):
        """The decoder stack on ``tgt`` (B, T) -> logits (B, T, V) and each layer's weights;
        ``need_weights="last"`` computes the last layer's only (the others use the fused path)."""
        y = self.positions(self.tgt_embedding(tgt) * self.scale, offset=offset)
        self_mask = None if caches is not None else causal_mask(tgt.shape[1], tgt.device)
        weights, last = [], len(self.decoder) - 1
        for i, layer in enumerate(self.decoder):
            wanted = need_weights is True or (need_weights == "last" and i == last)
            y, w = layer(y, encoded["kv"][i], encoded["mask"], self_mask=self_mask,
                         cache=caches[i] if caches is not None else None, need_weights=wanted)
            weights.append(w)
        return self.out(self.decoder_norm(y)), weights

    @staticmethod
    def reorder(memory_or_state, index: torch.Tensor):
        """Select batch rows (for beam search) of the encoded memory or the decoding state."""
        if isinstance(memory_or_state, torch.Tensor):
            return memory_or_state[index]
        if isinstance(memory_or_state, (list, tuple)):
            return type(memory_or_state)(Transformer.reorder(x, index) for x in memory_or_state)
        if isinstance(memory_or_state, dict):
            return {k: Transformer.reorder(v, index) for k, v in memory_or_state.items()}
        return memory_or_state

    def decode_step(self, prev: torch.Tensor, memory: dict,
                    state: dict | None) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """One token with the key/value cache: (B,) -> (B, V) logits, the new state, and the
        last layer's cross-attention weights averaged over heads, (B, S)."""
        state = state if state is not None else {"step": 0, "caches": [{} for _ in self.decoder]}
        logits, weights = self._decode(prev[:, None], memory, offset=state["step"],
                                       caches=state["caches"], need_weights="last")
        cross = weights[-1]["cross"][:, :, 0].mean(1)                         # (B, S)
        return logits[:, 0], {"step": state["step"] + 1, "caches": state["caches"]}, cross

    def forward(self, *, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor,
                need_weights: bool = False):
        """(B, S), (B,), (B, T) -> (B, T, V) logits; with ``need_weights``, also every layer's
        weights: {"encoder": [(B, H, S, S)], "decoder": [{"self", "cross"}]}."""
        encoded = self.encode(src, src_len, need_weights=need_weights)
        logits, weights = self._decode(tgt_in, encoded, need_weights=need_weights)
        if need_weights:
            return logits, {"encoder": encoded["weights"], "decoder": weights}
        return logits
