"""The attention model of Bahdanau, Cho and Bengio (2015).

A bidirectional GRU encoder keeps one state per source word. At every step the
decoder's previous state queries those states with additive attention, and
the resulting context joins the decoder's input: each output word gets its
own context, instead of the one fixed vector of chapter 2.

Shapes: B batch, S source length, T target length, V vocabulary size; ``embed``
and ``hidden`` are the embedding and decoder hidden sizes, ``keys`` the size of an
encoder state (both directions together), A the attention's hidden size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from attnlab.models.contract import Seq2SeqOutput, Step, register
from attnlab.models.rnn import GRUEncoder, PredictionHead
from attnlab.nn import masks
from attnlab.nn.attention import AdditiveAttention
from attnlab.nn.batched import Batched
from attnlab.nn.layers import Dropout, init_embedding


@dataclass
class AttentionMemory(Batched):
    """What the encoder passes on: a state per source word, and what decoding reuses."""

    keys: torch.Tensor  # (B, S, keys): encoder states, the keys and values
    mask: torch.Tensor  # (B, 1, S): True at real source positions
    projected_keys: torch.Tensor  # (B, S, A): W_k h_j, computed once per sentence
    initial_state: torch.Tensor  # (B, hidden): the decoder's state at the start


@dataclass
class AttentionState(Batched):
    """The decoder's hidden state between generation steps."""

    hidden: torch.Tensor  # (B, hidden)


class BahdanauDecoder(nn.Module):
    """A GRU decoder whose input at step t is ``[embedding(y_{t-1}); c_t]``, where the
    context ``c_t`` attends over the encoder states with the previous state
    ``s_{t-1}``."""

    def __init__(
        self,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        key_size: int,
        attention_size: int,
        proj_size: int = 128,
        dropout: float = 0.0,
        pad_id: int = 0,
    ):
        super().__init__()
        self.embedding = init_embedding(
            nn.Embedding(vocab_size, embed_size, padding_idx=pad_id)
        )
        self.attention = AdditiveAttention(hidden_size, key_size, attention_size)
        self.cell = nn.GRUCell(embed_size + key_size, hidden_size)
        self.dropout = Dropout(dropout)
        self.head = PredictionHead(
            hidden_size + embed_size + key_size, proj_size, vocab_size, dropout
        )

    def step(
        self,
        embedded: torch.Tensor,
        state: torch.Tensor,
        memory: AttentionMemory,
        temperature: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step: (B, embed) input embedding, (B, hidden) previous state -> new state
        (B, hidden), context (B, keys) and attention weights (B, S)."""
        context, alpha = self.attention(
            query=state[:, None, :],
            key=memory.keys,
            value=memory.keys,
            mask=memory.mask,
            projected_keys=memory.projected_keys,
            temperature=temperature,
        )
        context, alpha = context[:, 0], alpha[:, 0]  # (B, keys), (B, S)
        state = self.cell(torch.cat([embedded, context], dim=-1), state)
        return state, context, alpha

    def forward(
        self, tgt_in: torch.Tensor, memory: AttentionMemory, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode T steps from the given previous tokens (teacher forcing, or T = 1).

        Shapes:
            tgt_in: (B, T); state: (B, hidden) the state before the first step.
            returns logits: (B, T, V), the final state (B, hidden), weights alpha: (B,
                T, S).
        """
        embedded = self.dropout(self.embedding(tgt_in))  # (B, T, embed)
        states, contexts, alphas = [], [], []
        # sequential: each query is the previous state. (unbind, not embedded[:, t]: the
        # backward pass then stacks T gradients once instead of adding T full-size ones)
        for embedded_t in embedded.unbind(1):
            state, context, alpha = self.step(embedded_t, state, memory)
            states.append(state)
            contexts.append(context)
            alphas.append(alpha)
        # The prediction head does not feed back into the loop: one call for all steps.
        features = torch.cat(
            [self.dropout(torch.stack(states, 1)), embedded, torch.stack(contexts, 1)],
            dim=-1,
        )
        return self.head(features), state, torch.stack(alphas, 1)


@register
class AttentionEncoderDecoder(nn.Module):
    """Bahdanau attention: a (bidirectional) GRU encoder, additive attention, a GRU
    decoder.

    ``forward`` returns the logits **and** the attention weights of every step;
    ``encode`` and ``decode_step`` generate (see :mod:`attnlab.models.contract`).
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        embed_size: int = 128,
        hidden_size: int = 256,
        attention_size: int = 128,
        proj_size: int = 128,
        bidirectional: bool = True,
        dropout: float = 0.1,
        pad_id: int = 0,
    ):
        super().__init__()
        encoder_size = hidden_size // 2 if bidirectional else hidden_size
        key_size = 2 * encoder_size if bidirectional else encoder_size
        self.encoder = GRUEncoder(
            src_vocab,
            embed_size,
            encoder_size,
            1,
            dropout,
            bidirectional=bidirectional,
            pad_id=pad_id,
        )
        # initial decoder state from the encoder
        self.bridge = nn.Linear(key_size, hidden_size)
        self.decoder = BahdanauDecoder(
            tgt_vocab,
            embed_size,
            hidden_size,
            key_size,
            attention_size,
            proj_size,
            dropout,
            pad_id,
        )

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> AttentionMemory:
        """Encoder states (the keys and values), their projections, the mask, the first
        state."""
        keys, final = self.encoder(src, src_len)  # (B, S, keys), (directions, B, .)
        summary = torch.cat(list(final), dim=-1)  # (B, keys)
        return AttentionMemory(
            keys=keys,
            mask=masks.padding_mask(src_len, src.shape[1]),
            projected_keys=self.decoder.attention.project_keys(keys),  # once a sentence
            initial_state=torch.tanh(self.bridge(summary)),
        )

    def decode_step(
        self, prev: torch.Tensor, memory: AttentionMemory, state: AttentionState | None
    ) -> Step:
        """(B,) previous tokens -> (B, V) logits, the new state, the weights (B, S)."""
        hidden = memory.initial_state if state is None else state.hidden
        logits, hidden, alpha = self.decoder(prev[:, None], memory, hidden)
        return Step(logits[:, 0], AttentionState(hidden), alpha[:, 0])

    def forward(
        self, *, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor
    ) -> Seq2SeqOutput:
        """(B, S), (B,), (B, T) -> logits (B, T, V) and attention weights (B, T, S)."""
        memory = self.encode(src, src_len)
        logits, _, alpha = self.decoder(tgt_in, memory, memory.initial_state)
        return Seq2SeqOutput(logits, attention=alpha)
