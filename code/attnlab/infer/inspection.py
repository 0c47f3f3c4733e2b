"""Reading a trained model's attention: the weights behind a translation, for every
model.

This module computes; :mod:`attnlab.view.explorer` and :mod:`attnlab.view.plots`
present. It needs only the models' contract (:mod:`attnlab.models.contract`), and no
widgets.

Shapes: S source length, T output length, h heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from attnlab.data.vocab import BOS, EOS
from attnlab.infer.decoding import translate


@dataclass
class Alignment:
    """A translated sentence and the attention weights that produced it."""

    source: list[str]  # source tokens, <eos> included
    target: list[str]  # output tokens, <eos> included
    weights: torch.Tensor  # (T, S): row t is where step t looked


def with_temperature(weights: torch.Tensor, temperature: float) -> torch.Tensor:
    """Re-normalise attention weights as if the softmax had been taken at
    ``temperature``.

    softmax(e / tau) is proportional to softmax(e) ** (1 / tau), so the weights
    alone suffice; zero weights (padding) stay zero.
    """
    sharpened = weights.clamp(min=0) ** (1.0 / temperature)
    return sharpened / sharpened.sum(-1, keepdim=True).clamp(min=1e-30)


def align(
    model, sentence: str, src_vocab, tgt_vocab, *, max_len: int = 30
) -> Alignment:
    """Translate ``sentence`` greedily with an attention model and keep its weights."""
    result = translate(model, sentence, src_vocab, tgt_vocab, max_len=max_len, top_k=0)
    if result.attention is None:
        raise ValueError(f"{type(model).__name__} has no attention weights to explore")
    ended = len(result.probs) > len(result.tokens)  # the last step produced <eos>
    return Alignment(
        source=result.source + [EOS],
        target=result.tokens + ([EOS] if ended else []),
        weights=result.attention,
    )


@dataclass(frozen=True)
class AttentionKind:
    """One of a Transformer's three kinds of attention, as every view names it."""

    name: str  # as the explorers and the website label it
    output: str  # its field of contract.LayerWeights: the exported graph's output
    rows: str  # what a map's rows are: "source" words, or the words "written"
    cols: str  # its columns: "source" words, or what the decoder has "read"
    axes: str  # the same in words, under every map

    def to_dict(self) -> dict:
        return asdict(self)


# The one list of the kinds: the explorers, the exported manifests and the website's
# live translation all read it.
ATTENTION_KINDS = (
    AttentionKind(
        "encoder self-attention",
        "encoder",
        "source",
        "source",
        "Rows: source words (queries); columns: source words (keys).",
    ),
    AttentionKind(
        "decoder self-attention",
        "decoder_self",
        "written",
        "read",
        "Rows: the word written at each step; columns: what the decoder has "
        "read (<bos>, then the words already written).",
    ),
    AttentionKind(
        "cross-attention",
        "cross",
        "written",
        "source",
        "Rows: the word written at each step; columns: source words.",
    ),
)
KINDS = tuple(kind.name for kind in ATTENTION_KINDS)
KIND = {kind.name: kind for kind in ATTENTION_KINDS}


@dataclass
class LayerAttention:
    """A sentence translated by a Transformer, and the weights of every layer and head.

    ``weights[kind][layer]`` is (h, queries, keys): encoder self-attention is
    (h, S, S) over the source; decoder self-attention (h, T, T) over the
    decoder's inputs (``<bos>`` and the words already written); cross-attention
    (h, T, S) from each output step to the source.
    """

    source: list[str]  # source tokens, <eos> included
    target: list[str]  # output tokens, <eos> included if produced
    weights: dict[str, list[torch.Tensor]]

    @property
    def inputs(self) -> list[str]:
        """What the decoder reads at each step: <bos>, then the words already
        written."""
        return [BOS] + self.target[:-1]

    def labels(self, kind: str) -> tuple[list[str], list[str]]:
        """Row (query) and column (key) labels of a map of ``kind``."""
        if kind not in KIND:
            raise ValueError(
                f"unknown kind of attention {kind!r}; choose one of {KINDS}"
            )
        labels = {"source": self.source, "written": self.target, "read": self.inputs}
        return labels[KIND[kind].rows], labels[KIND[kind].cols]


def replay_inputs(
    source: Sequence[str], target: Sequence[str], src_vocab, tgt_vocab, device
) -> dict[str, torch.Tensor]:
    """The model inputs that replay a translation by teacher forcing, a batch of one:
    the source (``source`` ends with ``<eos>``) and the decoder inputs (``<bos>``, then
    the output without its last token)."""
    src = src_vocab.encode(source[:-1]) + [src_vocab.eos_id]
    tgt_in = [tgt_vocab.bos_id] + tgt_vocab.encode(target[:-1])
    return {
        "src": torch.tensor([src], device=device),
        "src_len": torch.tensor([len(src)], device=device),
        "tgt_in": torch.tensor([tgt_in], device=device),
    }


@torch.no_grad()
def layer_attention(
    model, sentence: str, src_vocab, tgt_vocab, *, max_len: int = 30
) -> LayerAttention:
    """Translate ``sentence`` greedily with a Transformer, then run the decoder once
    more on its own output (teacher-forced) to read every layer's weights."""
    translation = align(model, sentence, src_vocab, tgt_vocab, max_len=max_len)
    model.eval()
    layers = model(
        **replay_inputs(
            translation.source,
            translation.target,
            src_vocab,
            tgt_vocab,
            next(model.parameters()).device,
        ),
        need_weights=True,
    ).layers
    return LayerAttention(
        source=translation.source,
        target=translation.target,
        weights={
            kind.name: [w[0].cpu() for w in getattr(layers, kind.output)]
            for kind in ATTENTION_KINDS
        },
    )
