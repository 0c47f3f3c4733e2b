"""Forcing the first words of a translation: the model reads them as its own, as in
teacher forcing, then goes on greedily (or with beam search,
:func:`attnlab.infer.beams.beam_translate`); what it thought of each forced word, and
where it looked, is what the website's "force a prefix" view shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnlab.data.corpus import detokenize, tokenize
from attnlab.data.vocab import BOS, EOS, PAD, Vocab
from attnlab.infer.decoding import greedy_decode, read_source


@dataclass
class ForcedTranslation:
    """A translation whose first words were given (:func:`force_prefix`)."""

    source: list[str]  # source tokens as the model saw them (after truncation)
    unknown: list[str]  # source words the vocabulary lacks (read as <unk>)
    truncated: bool  # whether the source was cut to max_src_len tokens
    forced: list[str]  # the forced words as the model read them (<unk> if unknown)
    forced_unknown: list[str]  # forced words the target vocabulary lacks
    forced_probs: list[float]  # the probability the model gave each forced word
    ids: list[int]  # every token written, forced ones first, <eos> left out
    tokens: list[str]  # the whole translation, forced words first, without <eos>
    text: str  # the same, detokenised
    probs: list[float]  # the probability of each word it chose after them (and <eos>)
    attention: torch.Tensor | None  # (T, S) every step's weights, forced ones first


@dataclass
class Prefix:
    """The first words of a translation, as a model reads them (:func:`read_prefix`)."""

    words: list[str]  # as the model reads them (<unk> for a word it lacks)
    unknown: list[str]  # the words the target vocabulary lacks
    ids: torch.Tensor  # (1, P) their ids, on the model's device


def read_prefix(prefix: str, tgt_vocab: Vocab, max_len: int, *, model) -> Prefix:
    """``prefix`` tokenised as the corpus is, to force on ``model``'s translation; an
    empty prefix, a reserved token or ``max_len`` words or more are refused."""
    forced = tokenize(prefix)
    if not forced:
        raise ValueError(
            "the forced prefix is empty: type the first words of the translation"
        )
    reserved = [w for w in forced if w in (PAD, BOS, EOS)]
    if reserved:
        raise ValueError(
            f"the forced prefix cannot hold {', '.join(reserved)}: only words are "
            "forced"
        )
    if len(forced) >= max_len:
        raise ValueError(
            f"the forced prefix has {len(forced)} words; at most {max_len - 1} can be "
            f"forced (max_len is {max_len})"
        )
    ids = tgt_vocab.encode(forced)
    return Prefix(
        words=[tgt_vocab.itos[i] for i in ids],
        unknown=[w for w in forced if w not in tgt_vocab],
        ids=torch.tensor([ids], device=next(model.parameters()).device),
    )


@torch.no_grad()
def force_prefix(
    model,
    sentence: str,
    prefix: str,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    *,
    max_len: int = 30,
    max_src_len: int = 50,
) -> ForcedTranslation:
    """Translate ``sentence`` with the translation's first words forced to ``prefix``
    (see :func:`read_prefix`): the model reads them step by step as if it had written
    them, then decodes greedily until ``<eos>`` or ``max_len`` steps in all
    (:func:`~attnlab.infer.decoding.greedy_decode` with its ``prefix``)."""
    source = read_source(sentence, src_vocab, max_src_len, model=model)
    forced = read_prefix(prefix, tgt_vocab, max_len, model=model)
    out = greedy_decode(
        model,
        source.src,
        source.src_len,
        bos_id=tgt_vocab.bos_id,
        eos_id=tgt_vocab.eos_id,
        max_len=max_len,
        pad_id=tgt_vocab.pad_id,
        prefix=forced.ids,
    )
    n, p = int(out.lengths[0]), len(forced.words)
    written = out.tokens[0, :n].tolist()
    if written[-1] == tgt_vocab.eos_id:
        written.pop()
    probs = out.probs[0, :n].tolist()
    words = tgt_vocab.decode(written)
    return ForcedTranslation(
        source=source.tokens,
        unknown=source.unknown,
        truncated=source.truncated,
        forced=forced.words,
        forced_unknown=forced.unknown,
        forced_probs=probs[:p],
        ids=written,
        tokens=words,
        text=detokenize(words),
        probs=probs[p:],
        attention=out.attention[0, :n].cpu() if out.attention is not None else None,
    )
