"""The RNN encoder-decoder of Cho et al. (2014) and Sutskever et al. (2014), with GRUs.

The encoder reads the source into one **context vector** ``c`` (its final
hidden state); the decoder starts from that state and sees ``c`` again at
every step; a prediction head turns each decoder state into a distribution
over the target vocabulary.

Shapes: B batch, S source length, T target length, N layers, V vocabulary
size; ``embed`` and ``hidden`` are the embedding and hidden sizes, written out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from attnlab.models.contract import Seq2SeqOutput, Step, register
from attnlab.nn.batched import Batched, batch_dim
from attnlab.nn.layers import Dropout, init_embedding


class GRUEncoder(nn.Module):
    """Embedding, then a multi-layer GRU over the source (batch first).

    Padding never changes an encoding: the forward GRU reads each sentence up to its
    own end (what it computes on the padding after is dropped), the backward GRU of a
    bidirectional encoder reads each sentence reversed within its own length, and each
    final state is read at the sentence's last real token. A sentence gets the same
    encoding whatever batch it is in, and the lengths never leave the device (packing
    the batch would copy them to the host and make it wait, at every step).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
        pad_id: int = 0,
    ):
        super().__init__()
        self.embedding = init_embedding(
            nn.Embedding(vocab_size, embed_size, padding_idx=pad_id)
        )
        directions = 2 if bidirectional else 1

        def layers() -> nn.ModuleList:  # one single-layer GRU per layer
            return nn.ModuleList(
                nn.GRU(
                    embed_size if i == 0 else hidden_size * directions,
                    hidden_size,
                    batch_first=True,
                )
                for i in range(num_layers)
            )

        self.forward_layers = layers()
        self.backward_layers = layers() if bidirectional else None
        self.dropout = Dropout(dropout)
        self.between_layers = Dropout(dropout if num_layers > 1 else 0.0)

    def forward(
        self, src: torch.Tensor, src_len: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch.

        Shapes:
            src: (B, S) token ids; src_len: (B,) true lengths (at least 1).
            returns outputs: (B, S, hidden * directions), zero at padded positions;
            state: (N * directions, B, hidden), each sentence's final hidden state
            (layer by layer, forward before backward, as ``nn.GRU`` orders them).
        """
        positions = torch.arange(src.shape[1], device=src.device)
        real = positions < src_len[:, None]  # (B, S)
        last = (src_len - 1)[:, None]  # (B, 1)
        # position t of sentence b reversed within its length (padding stays put)
        reversed_at = torch.where(real, last - positions, positions)  # (B, S)
        x, finals = self.dropout(self.embedding(src)), []  # (B, S, embed)
        for i, forward in enumerate(self.forward_layers):
            if i:
                x = self.between_layers(x)
            ahead, _ = forward(x)  # (B, S, hidden)
            finals.append(_at(ahead, last)[:, 0])
            outputs = [ahead]
            if self.backward_layers is not None:
                back, _ = self.backward_layers[i](_at(x, reversed_at))
                back = _at(back, reversed_at)  # in source order again
                finals.append(back[:, 0])  # having read back to the first token
                outputs.append(back)
            x = torch.cat(outputs, dim=-1) * real[..., None]
        return x, torch.stack(finals)

    def gru_state_dict(self) -> dict[str, torch.Tensor]:
        """The GRU weights under the names one multi-layer ``nn.GRU`` gives them
        (``weight_ih_l0``, ``weight_ih_l0_reverse``, ...), to load into another
        implementation."""
        named = {}
        for suffix, layers in (
            ("", self.forward_layers),
            ("_reverse", self.backward_layers or []),
        ):
            for i, layer in enumerate(layers):
                for name, value in layer.state_dict().items():
                    named[name.replace("_l0", f"_l{i}") + suffix] = value
        return named


def _at(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[b, index[b, t]]`` for every b and t: (B, S, H), (B, T) -> (B, T, H)."""
    return values.gather(1, index[..., None].expand(-1, -1, values.shape[-1]))


class PredictionHead(nn.Module):
    """Scores for every target word from the decoder state, the previous word and the
    context.

    A narrow layer (``proj_size``) sits before the vocabulary-sized one, as in
    Cho et al.'s "deep output": the last layer, the costliest part of the
    model, then has ``proj_size x V`` weights instead of ``hidden x V``.
    """

    def __init__(
        self, in_size: int, proj_size: int, vocab_size: int, dropout: float = 0.0
    ):
        super().__init__()
        self.proj = nn.Linear(in_size, proj_size)
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(proj_size, vocab_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(..., in_size) -> (..., V) logits; their softmax is the next-token
        distribution."""
        return self.out(self.dropout(torch.tanh(self.proj(features))))


class ContextGRUDecoder(nn.Module):
    """A GRU decoder that starts from the encoder's state and reads the context at every
    step.

    The input at step t is ``[embedding(y_{t-1}); c]`` where ``c`` is the top
    layer of the encoder's final state, as in Cho et al. (2014).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        num_layers: int = 1,
        proj_size: int = 128,
        dropout: float = 0.0,
        pad_id: int = 0,
    ):
        super().__init__()
        self.embedding = init_embedding(
            nn.Embedding(vocab_size, embed_size, padding_idx=pad_id)
        )
        self.rnn = nn.GRU(
            embed_size + hidden_size,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = Dropout(dropout)
        self.head = PredictionHead(
            hidden_size + embed_size + hidden_size, proj_size, vocab_size, dropout
        )

    def forward(
        self, tgt_in: torch.Tensor, state: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode T steps with the given inputs (teacher forcing, or T = 1 when
        generating).

        Shapes:
            tgt_in: (B, T) previous tokens; state: (N, B, hidden); context: (B, hidden).
            returns logits: (B, T, V) and the new state (N, B, hidden).
        """
        embedded = self.dropout(self.embedding(tgt_in))  # (B, T, embed)
        context = context[:, None, :].expand(-1, tgt_in.shape[1], -1)  # (B, T, hidden)
        outputs, state = self.rnn(torch.cat([embedded, context], dim=-1), state)
        features = torch.cat([self.dropout(outputs), embedded, context], dim=-1)
        return self.head(features), state


@dataclass
class ContextMemory(Batched):
    """What the encoder passes on: the context vector, the decoder's first state."""

    context: torch.Tensor  # (B, hidden): the top layer's final state
    state: torch.Tensor = batch_dim(1)  # (N, B, hidden): every layer's final state


@dataclass
class RecurrentState(Batched):
    """The decoder's hidden state between generation steps."""

    hidden: torch.Tensor = batch_dim(1)  # (N, B, hidden)


@register
class EncoderDecoder(nn.Module):
    """The RNN encoder-decoder: encoder, context vector, decoder, prediction head.

    ``forward`` trains with teacher forcing; ``encode`` and ``decode_step``
    generate one token at a time (see :mod:`attnlab.models.contract`).
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        embed_size: int = 128,
        hidden_size: int = 256,
        num_layers: int = 1,
        proj_size: int = 128,
        dropout: float = 0.1,
        pad_id: int = 0,
    ):
        super().__init__()
        self.encoder = GRUEncoder(
            src_vocab, embed_size, hidden_size, num_layers, dropout, pad_id=pad_id
        )
        self.decoder = ContextGRUDecoder(
            tgt_vocab,
            embed_size,
            hidden_size,
            num_layers,
            proj_size,
            dropout,
            pad_id=pad_id,
        )

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> ContextMemory:
        """Read the source. The context vector c is the top layer's final state."""
        _, state = self.encoder(src, src_len)
        return ContextMemory(context=state[-1], state=state)

    def decode_step(
        self, prev: torch.Tensor, memory: ContextMemory, state: RecurrentState | None
    ) -> Step:
        """One generation step: (B,) previous tokens -> (B, V) logits and the new state
        (no attention weights: this model has none)."""
        hidden = memory.state if state is None else state.hidden
        logits, hidden = self.decoder(prev[:, None], hidden, memory.context)
        return Step(logits[:, 0], RecurrentState(hidden))

    def forward(
        self, *, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor
    ) -> Seq2SeqOutput:
        """(B, S), (B,), (B, T) -> (B, T, V) logits, with teacher forcing."""
        memory = self.encode(src, src_len)
        logits, _ = self.decoder(tgt_in, memory.state, memory.context)
        return Seq2SeqOutput(logits)
