"""Scores: corpus BLEU through sacreBLEU, and exact match for synthetic tasks."""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu


def bleu_score(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> sacrebleu.BLEUScore:
    """sacreBLEU's corpus BLEU of detokenised ``hypotheses``, one per source sentence.

    ``references[i]`` lists *every* reference translation of sentence ``i``; the
    number may differ from sentence to sentence (Tatoeba often has several).
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if not hypotheses:
        raise ValueError("BLEU of an empty corpus is undefined")
    if any(len(refs) == 0 for refs in references):
        raise ValueError("every sentence needs at least one reference")
    width = max(len(refs) for refs in references)
    # sacreBLEU takes one stream per reference slot; None fills the missing ones.
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    return sacrebleu.corpus_bleu(list(hypotheses), streams)


def bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (0-100) of ``hypotheses`` against all of each sentence's references."""
    return float(bleu_score(hypotheses, references).score)


def exact_match(predictions: Sequence[Sequence[str]], targets: Sequence[Sequence[str]]) -> float:
    """The fraction of predictions equal to their target, token for token."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions but {len(targets)} targets")
    if not targets:
        raise ValueError("exact match of an empty set is undefined")
    return sum(list(p) == list(t) for p, t in zip(predictions, targets)) / len(targets)
