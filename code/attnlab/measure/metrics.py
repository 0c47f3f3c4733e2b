"""Scores: corpus BLEU and chrF through sacreBLEU, with its bootstrap intervals and
paired-bootstrap test; exact match for synthetic tasks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.significance import PairedTest


def _streams(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> list[list[str | None]]:
    """sacreBLEU's reference streams: one per reference slot, None where a sentence has
    fewer references than the most."""
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} reference lists"
        )
    if not hypotheses:
        raise ValueError("BLEU of an empty corpus is undefined")
    if any(len(refs) == 0 for refs in references):
        raise ValueError("every sentence needs at least one reference")
    width = max(len(refs) for refs in references)
    return [
        [refs[k] if k < len(refs) else None for refs in references]
        for k in range(width)
    ]


def bleu_score(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> sacrebleu.BLEUScore:
    """sacreBLEU's corpus BLEU of detokenised ``hypotheses``, one per source sentence.

    ``references[i]`` lists *every* reference translation of sentence ``i``; the
    number may differ from sentence to sentence (Tatoeba often has several).
    """
    return sacrebleu.corpus_bleu(list(hypotheses), _streams(hypotheses, references))


def signature(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    """sacreBLEU's signatures of the BLEU and chrF computed here: what a score needs
    beside it to be reproduced (number of references, case, tokenisation, version)."""
    streams = _streams(hypotheses, references)
    found = {}
    for name, metric in (("BLEU", BLEU()), ("chrF", CHRF())):
        metric.corpus_score(list(hypotheses), streams)
        found[name] = str(metric.get_signature())
    return found


def chrf(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus chrF (0-100): the F-score of character n-grams (Popovic, 2015), which
    gives partial credit to a word right but for its ending; with all of each
    sentence's references."""
    return float(
        sacrebleu.corpus_chrf(list(hypotheses), _streams(hypotheses, references)).score
    )


def bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (0-100) of ``hypotheses`` against all of each sentence's
    references."""
    return float(bleu_score(hypotheses, references).score)


@dataclass(frozen=True)
class Bootstrapped:
    """One system's corpus BLEU on a test set, with what resampling the test set says of
    it: a 95 % interval and, against a baseline on the same sentences, a p-value."""

    bleu: float  # the test set's BLEU, as :func:`bleu` gives it
    mean: float  # the mean over the resampled test sets
    half_width: float  # the 95 % interval is mean +- half_width
    p_value: float | None  # paired test against the baseline (None: the baseline)

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def __str__(self) -> str:
        return f"{self.bleu:.1f} ({self.low:.1f}-{self.high:.1f})"


def paired_bootstrap(
    systems: Mapping[str, Sequence[str]],
    references: Sequence[Sequence[str]],
    *,
    samples: int = 1000,
) -> dict[str, Bootstrapped]:
    """Corpus BLEU of each named system's hypotheses (one per test sentence, the same
    sentences for all), with sacreBLEU's bootstrap: ``samples`` test sets drawn with
    replacement from the sentences give each score a 95 % interval, and the first
    system is the baseline of a paired test for every other (Koehn, 2004). The p-value
    is the chance of a difference at least as large as the one observed if the two
    systems were equally good. Resampling is seeded (sacreBLEU's seed, 12345, unless
    ``SACREBLEU_SEED`` says otherwise), so the same hypotheses give the same numbers."""
    if not systems:
        raise ValueError("give at least one system")
    if samples < 100:
        raise ValueError(
            f"{samples} resamples are too few for a 95 % interval; use at least 100"
        )
    named = [(name, list(hyps)) for name, hyps in systems.items()]
    streams = _streams(named[0][1], references)
    for name, hyps in named[1:]:
        if len(hyps) != len(named[0][1]):
            raise ValueError(
                f"{name!r} has {len(hyps)} hypotheses, "
                f"{named[0][0]!r} {len(named[0][1])}: a paired test needs "
                "the same sentences"
            )
    _, results = PairedTest(
        named, {"BLEU": BLEU()}, streams, test_type="bs", n_samples=samples
    )()
    return {
        name: Bootstrapped(
            bleu=float(r.score),
            mean=float(r.mean),
            half_width=float(r.ci),
            p_value=None if r.p_value is None else float(r.p_value),
        )
        for name, r in zip(results["System"], results["BLEU"])
    }


def exact_match(
    predictions: Sequence[Sequence[str]], targets: Sequence[Sequence[str]]
) -> float:
    """The fraction of predictions equal to their target, token for token."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions but {len(targets)} targets")
    if not targets:
        raise ValueError("exact match of an empty set is undefined")
    return sum(list(p) == list(t) for p, t in zip(predictions, targets)) / len(targets)


def length_buckets(
    lengths: Sequence[int], edges: Sequence[int], start: int = 1
) -> list[tuple[str, list[int]]]:
    """Group item indices by length: ``edges=[3, 5, 10]`` gives buckets 1-3, 4-5, 6-10
    (the first starting at ``start``). Returns ``(label, indices)`` pairs in order,
    leaving out empty buckets; lengths beyond the last edge are left out too.
    """
    buckets, low = [], start
    for high in edges:
        members = [i for i, n in enumerate(lengths) if low <= n <= high]
        if members:
            buckets.append((f"{low}" if low == high else f"{low}-{high}", members))
        low = high + 1
    return buckets


def bleu_by_length(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    lengths: Sequence[int],
    edges: Sequence[int],
    start: int = 1,
) -> list[dict]:
    """Corpus BLEU within each source-length bucket (see :func:`length_buckets`)."""
    return [
        {
            "bucket": label,
            "sentences": len(idx),
            "bleu": bleu([hypotheses[i] for i in idx], [references[i] for i in idx]),
        }
        for label, idx in length_buckets(lengths, edges, start)
    ]


def paired_bootstrap_by_length(
    systems: Mapping[str, Sequence[str]],
    references: Sequence[Sequence[str]],
    lengths: Sequence[int],
    edges: Sequence[int],
    *,
    start: int = 1,
    samples: int = 1000,
) -> dict[str, dict[str, Bootstrapped]]:
    """:func:`paired_bootstrap` within each source-length bucket
    (:func:`length_buckets` of ``lengths``, one a test sentence): for each bucket's
    label, every system's BLEU on the bucket's sentences with its 95 % interval and its
    paired test against the first system. A bucket of few sentences gets a wide
    interval: that is what it can say."""
    if len(lengths) != len(references):
        raise ValueError(f"{len(lengths)} lengths but {len(references)} test sentences")
    named = {name: list(hyps) for name, hyps in systems.items()}
    return {
        label: paired_bootstrap(
            {name: [hyps[i] for i in members] for name, hyps in named.items()},
            [references[i] for i in members],
            samples=samples,
        )
        for label, members in length_buckets(lengths, edges, start)
    }


def exact_match_by_length(
    predictions: Sequence[Sequence[str]],
    targets: Sequence[Sequence[str]],
    lengths: Sequence[int],
    edges: Sequence[int],
    start: int = 1,
) -> list[dict]:
    """Exact-match accuracy within each length bucket (see :func:`length_buckets`)."""
    return [
        {
            "bucket": label,
            "examples": len(idx),
            "exact_match": exact_match(
                [predictions[i] for i in idx], [targets[i] for i in idx]
            ),
        }
        for label, idx in length_buckets(lengths, edges, start)
    ]
