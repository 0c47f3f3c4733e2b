"""The RNN encoder-decoder of Cho et al. (2014) and Sutskever et al. (2014), with GRUs.

The encoder reads the source into one **context vector** ``c`` (its final
hidden state); the decoder starts from that state and sees ``c`` again at
every step; a prediction head turns each decoder state into a distribution
over the target vocabulary.

Shapes: B batch, S source length, T target length, E embedding size,
H hidden size, L layers, V vocabulary size.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .checkpoints import register


def init_embedding(embedding: nn.Embedding) -> nn.Embedding:
    """N(0, 1/E) initialisation, keeping the padding row at zero."""
    nn.init.normal_(embedding.weight, std=embedding.embedding_dim ** -0.5)
    if embedding.padding_idx is not None:
        with torch.no_grad():
            embedding.weight[embedding.padding_idx].zero_()
    return embedding


class GRUEncoder(nn.Module):
    """Embedding, then a multi-layer GRU over the source (batch first).

    Sequences are packed by length, so padding never enters the recurrence:
    a sentence gets the same encoding whatever batch it is in.
    """

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0, bidirectional: bool = False, pad_id: int = 0):
        super().__init__()
        self.embedding = init_embedding(nn.Embedding(vocab_size, embed_size, padding_idx=pad_id))
        self.rnn = nn.GRU(embed_size, hidden_size, num_layers, batch_first=True,
                          dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch.

        Shapes:
            src: (B, S) token ids; src_len: (B,) true lengths.
            returns outputs: (B, S, H * directions), zero at padded positions;
            state: (L * directions, B, H), each sentence's final hidden state.
        """
        embedded = self.dropout(self.embedding(src))                     # (B, S, E)
        if bool((src_len == src.shape[1]).all()):
            return self.rnn(embedded)      # no padding in this batch: packing would only cost time
        packed = pack_padded_sequence(embedded, src_len.cpu(), batch_first=True,
                                      enforce_sorted=False)
        outputs, state = self.rnn(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.shape[1])
        return outputs, state


class PredictionHead(nn.Module):
    """Scores for every target word from the decoder state, the previous word and the context.

    A narrow layer (``proj_size``) sits before the vocabulary-sized one, as in
    Cho et al.'s "deep output": the last layer, the costliest part of the
    model, then has ``proj_size x V`` weights instead of ``H x V``.
    """

    def __init__(self, in_size: int, proj_size: int, vocab_size: int, dropout: float = 0.0):
        super().__init__()
        self.proj = nn.Linear(in_size, proj_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(proj_size, vocab_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(..., in_size) -> (..., V) logits; their softmax is the next-token distribution."""
        return self.out(self.dropout(torch.tanh(self.proj(features))))


class ContextGRUDecoder(nn.Module):
    """A GRU decoder that starts from the encoder's state and reads the context at every step.

    The input at step t is ``[embedding(y_{t-1}); c]`` where ``c`` is the top
    layer of the encoder's final state, as in Cho et al. (2014).
    """

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int, num_layers: int = 1,
                 proj_size: int = 128, dropout: float = 0.0, pad_id: int = 0):
        super().__init__()
        self.embedding = init_embedding(nn.Embedding(vocab_size, embed_size, padding_idx=pad_id))
        self.rnn = nn.GRU(embed_size + hidden_size, hidden_size, num_layers, batch_first=True,
                          dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = PredictionHead(hidden_size + embed_size + hidden_size, proj_size, vocab_size,
                                   dropout)

    def forward(self, tgt_in: torch.Tensor, state: torch.Tensor,
                context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode T steps with the given inputs (teacher forcing, or T = 1 when generating).

        Shapes:
            tgt_in: (B, T) previous tokens; state: (L, B, H); context: (B, H).
            returns logits: (B, T, V) and the new state (L, B, H).
        """
        embedded = self.dropout(self.embedding(tgt_in))                   # (B, T, E)
        context = context[:, None, :].expand(-1, tgt_in.shape[1], -1)     # (B, T, H)
        outputs, state = self.rnn(torch.cat([embedded, context], dim=-1), state)
        features = torch.cat([self.dropout(outputs), embedded, context], dim=-1)
        return self.head(features), state


@register
class EncoderDecoder(nn.Module):
    """The RNN encoder-decoder: encoder, context vector, decoder, prediction head.

    ``forward`` trains with teacher forcing; ``encode`` and ``decode_step``
    are what :mod:`attnlab.decoding` calls to generate one token at a time.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, embed_size: int = 128,
                 hidden_size: int = 256, num_layers: int = 1, proj_size: int = 128,
                 dropout: float = 0.1, pad_id: int = 0):
        super().__init__()
        self.config = dict(src_vocab=src_vocab, tgt_vocab=tgt_vocab, embed_size=embed_size,
                           hidden_size=hidden_size, num_layers=num_layers, proj_size=proj_size,
                           dropout=dropout, pad_id=pad_id)
        self.encoder = GRUEncoder(src_vocab, embed_size, hidden_size, num_layers, dropout,
                                  pad_id=pad_id)
        self.decoder = ContextGRUDecoder(tgt_vocab, embed_size, hidden_size, num_layers,
                                         proj_size, dropout, pad_id=pad_id)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> dict:
        """Read the source. The context vector c is the top layer's final state, (B, H)."""
        _, state = self.encoder(src, src_len)
        return {"context": state[-1], "state": state}

    @staticmethod
    def reorder(memory_or_state, index: torch.Tensor):
        """Select batch rows (for beam search): the memory dict or the (L, B, H) state."""
        if isinstance(memory_or_state, dict):
            return {"context": memory_or_state["context"][index],
                    "state": memory_or_state["state"][:, index]}
        return memory_or_state[:, index]

    def decode_step(self, prev: torch.Tensor, memory: dict,
                    state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, None]:
        """One generation step: (B,) previous tokens -> (B, V) logits, the new state, and
        no attention weights (this model has none)."""
        state = memory["state"] if state is None else state
        logits, state = self.decoder(prev[:, None], state, memory["context"])
        return logits[:, 0], state, None

    def forward(self, *, src: torch.Tensor, src_len: torch.Tensor,
                tgt_in: torch.Tensor) -> torch.Tensor:
        """(B, S), (B,), (B, T) -> (B, T, V) logits, with teacher forcing."""
        memory = self.encode(src, src_len)
        logits, _ = self.decoder(tgt_in, memory["state"], memory["context"])
        return logits
