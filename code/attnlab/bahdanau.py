"""The attention model of Bahdanau, Cho and Bengio (2015).

A bidirectional GRU encoder keeps one state per source word. At every step the
decoder's previous state queries those states with additive attention, and
the resulting context joins the decoder's input: each output word gets its
own context, instead of the one fixed vector of chapter 2.

Shapes: B batch, S source length, T target length, E embedding size,
H decoder hidden size, K = 2 x encoder hidden size (both directions), V vocabulary.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import AdditiveAttention
from .checkpoints import register
from .rnn import GRUEncoder, PredictionHead, init_embedding


class BahdanauDecoder(nn.Module):
    """A GRU decoder whose input at step t is ``[embedding(y_{t-1}); c_t]``, where the
    context ``c_t`` attends over the encoder states with the previous state ``s_{t-1}``."""

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int, key_size: int,
                 attention_size: int, proj_size: int = 128, dropout: float = 0.0, pad_id: int = 0):
        super().__init__()
        self.embedding = init_embedding(nn.Embedding(vocab_size, embed_size, padding_idx=pad_id))
        self.attention = AdditiveAttention(hidden_size, key_size, attention_size)
        self.cell = nn.GRUCell(embed_size + key_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.head = PredictionHead(hidden_size + embed_size + key_size, proj_size, vocab_size,
                                   dropout)

    def step(self, embedded: torch.Tensor, state: torch.Tensor, memory: dict,
             temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step: (B, E) input embedding, (B, H) previous state -> new state (B, H),
        context (B, K) and attention weights (B, S)."""
        context, alpha = self.attention(query=state[:, None, :], key=memory["keys"],
                                        value=memory["keys"], mask=memory["mask"],
                                        projected_keys=memory["projected_keys"],
                                        temperature=temperature)
        context, alpha = context[:, 0], alpha[:, 0]                      # (B, K), (B, S)
        state = self.cell(torch.cat([embedded, context], dim=-1), state)
        return state, context, alpha

    def forward(self, tgt_in: torch.Tensor, memory: dict,
                state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode T steps from the given previous tokens (teacher forcing, or T = 1).

        Shapes:
            tgt_in: (B, T); state: (B, H) the state before the first step.
            returns logits: (B, T, V), the final state (B, H), weights alpha: (B, T, S).
        """
        embedded = self.dropout(self.embedding(tgt_in))                 # (B, T, E)
        states, contexts, alphas = [], [], []
        for t in range(tgt_in.shape[1]):    # sequential: each query is the previous state
            state, context, alpha = self.step(embedded[:, t], state, memory)
            states.append(state)
            contexts.append(context)
            alphas.append(alpha)
        # The prediction head does not feed back into the loop: apply it to all steps at once.
        features = torch.cat([self.dropout(torch.stack(states, 1)), embedded,
                              torch.stack(contexts, 1)], dim=-1)
        return self.head(features), state, torch.stack(alphas, 1)


@register
class AttentionEncoderDecoder(nn.Module):
    """Bahdanau attention: a (bidirectional) GRU encoder, additive attention, a GRU decoder.

    ``forward`` returns the logits **and** the attention weights of every step;
    ``encode`` and ``decode_step`` serve :mod:`attnlab.decoding`.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, embed_size: int = 128,
                 hidden_size: int = 256, attention_size: int = 128, proj_size: int = 128,
                 bidirectional: bool = True, dropout: float = 0.1, pad_id: int = 0):
        super().__init__()
        self.config = dict(src_vocab=src_vocab, tgt_vocab=tgt_vocab, embed_size=embed_size,
                           hidden_size=hidden_size, attention_size=attention_size,
                           proj_size=proj_size, bidirectional=bidirectional, dropout=dropout,
                           pad_id=pad_id)
        encoder_size = hidden_size // 2 if bidirectional else hidden_size
        key_size = 2 * encoder_size if bidirectional else encoder_size
        self.encoder = GRUEncoder(src_vocab, embed_size, encoder_size, 1, dropout,
                                  bidirectional=bidirectional, pad_id=pad_id)
        self.bridge = nn.Linear(key_size, hidden_size)   # initial decoder state from the encoder
        self.decoder = BahdanauDecoder(tgt_vocab, embed_size, hidden_size, key_size,
                                       attention_size, proj_size, dropout, pad_id)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> dict:
        """Encoder states (the keys and values), their projections, the mask, the first state."""
        keys, final = self.encoder(src, src_len)                         # (B, S, K), (dirs, B, K/2)
        mask = torch.arange(src.shape[1], device=src.device)[None, :] < src_len[:, None]
        summary = torch.cat(list(final), dim=-1)                         # (B, K)
        return {"keys": keys, "mask": mask,
                "projected_keys": self.decoder.attention.project_keys(keys),  # once per sentence
                "initial_state": torch.tanh(self.bridge(summary))}

    @staticmethod
    def reorder(memory_or_state, index: torch.Tensor):
        """Select batch rows (for beam search): every tensor here is batch-first."""
        if isinstance(memory_or_state, dict):
            return {key: value[index] for key, value in memory_or_state.items()}
        return memory_or_state[index]

    def decode_step(self, prev: torch.Tensor, memory: dict,
                    state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B,) previous tokens -> (B, V) logits, the new state (B, H), the weights (B, S)."""
        state = memory["initial_state"] if state is None else state
        logits, state, alpha = self.decoder(prev[:, None], memory, state)
        return logits[:, 0], state, alpha[:, 0]

    def forward(self, *, src: torch.Tensor, src_len: torch.Tensor,
                tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S), (B,), (B, T) -> logits (B, T, V) and attention weights (B, T, S)."""
        memory = self.encode(src, src_len)
        logits, _, alpha = self.decoder(tgt_in, memory, memory["initial_state"])
        return logits, alpha
