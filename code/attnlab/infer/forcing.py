"""Forcing the first words of a translation: the model reads them as its own, as in
teacher forcing, then goes on greedily; what it thought of each forced word, and where
it looked, is what the website's "force a prefix" view shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attnlab.data.corpus import detokenize, tokenize
from attnlab.data.vocab import BOS, EOS, PAD, Vocab
from attnlab.infer.decoding import source_tokens


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
    (tokenised as the corpus is): the model reads them step by step as if it had
    written them, then decodes greedily until ``<eos>`` or ``max_len`` steps in all."""
    tokens, truncated = source_tokens(sentence, max_src_len)
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
    device = next(model.parameters()).device
    ids = src_vocab.encode(tokens) + [src_vocab.eos_id]
    forced_ids = tgt_vocab.encode(forced)
    model.eval()
    memory = model.encode(
        torch.tensor([ids], device=device), torch.tensor([len(ids)], device=device)
    )
    prev = torch.tensor([tgt_vocab.bos_id], device=device)
    state, written, forced_probs, probs, attention = None, [], [], [], []
    for t in range(max_len):
        step = model.decode_step(prev, memory, state)
        distribution = torch.softmax(step.logits[0].float(), dim=-1)
        if t < len(forced_ids):
            token = forced_ids[t]
            forced_probs.append(float(distribution[token]))
        else:
            token = int(distribution.argmax())
            probs.append(float(distribution[token]))
        if step.attention is not None:
            attention.append(step.attention[0].cpu())
        if t >= len(forced_ids) and token == tgt_vocab.eos_id:
            break
        written.append(token)
        prev = torch.tensor([token], device=device)
        state = step.state
    words = tgt_vocab.decode(written)
    return ForcedTranslation(
        source=tokens,
        unknown=[t for t in tokens if t not in src_vocab],
        truncated=truncated,
        forced=[tgt_vocab.itos[i] for i in forced_ids],
        forced_unknown=[w for w in forced if w not in tgt_vocab],
        forced_probs=forced_probs,
        ids=written,
        tokens=words,
        text=detokenize(words),
        probs=probs,
        attention=torch.stack(attention) if attention else None,
    )
