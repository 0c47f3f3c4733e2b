"""One sentence's beam search, step by step: what the website's beam view draws, and
what its tests hold the browser to.

:func:`beam_translate` runs :func:`attnlab.infer.decoding.beam_search` itself (the
algorithm, scores and tie-breaking the course's BLEU comes from) on one sentence, reads
its trace, and returns each step's candidates as :class:`Hypothesis` objects: which
beam place each extends, its log-probability raw and length-normalised, whether it
ended and where it goes on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch

from attnlab.data.corpus import detokenize
from attnlab.data.vocab import Vocab
from attnlab.infer.decoding import beam_search, read_source
from attnlab.infer.forcing import read_prefix


@dataclass(frozen=True)
class Hypothesis:
    """A candidate that one step of beam search read."""

    ids: tuple[int, ...]  # its tokens so far, <bos> left out, <eos> last if it ended
    words: tuple[str, ...]  # the same, as words
    logp: float  # its log-probability
    score: float  # logp / length_penalty(len(ids), alpha): what ranks the ended ones
    parent: int  # the beam place (of the step before) that it extends
    ended: bool  # it ends with <eos>, and joined the ended hypotheses
    place: int | None  # its place in the next beam; None if it does not go on


@dataclass
class BeamTranslation:
    """One sentence translated by :func:`beam_translate`."""

    source: list[str]  # source tokens as the model saw them (after truncation)
    unknown: list[str]  # source words the vocabulary lacks (read as <unk>)
    truncated: bool  # whether the source was cut to max_src_len tokens
    beam_size: int
    alpha: float
    steps: list[list[Hypothesis]]  # each step's candidates that were read, best first
    best: Hypothesis  # the translation: the best ended hypothesis, or best live one
    tokens: list[str]  # the translation's words, without <eos>
    text: str  # the same, detokenised
    # The forced first words, as the model read them (<unk> for one it lacks), those
    # it lacks, and the probability it gave each; empty lists when none were forced
    forced: list[str] = field(default_factory=list)
    forced_unknown: list[str] = field(default_factory=list)
    forced_probs: list[float] = field(default_factory=list)


@torch.no_grad()
def beam_translate(
    model,
    sentence: str,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    *,
    beam_size: int = 5,
    alpha: float = 0.6,
    max_len: int = 30,
    max_src_len: int = 50,
    prefix: str | None = None,
) -> BeamTranslation:
    """Translate one raw sentence with beam search, keeping every step (source read as
    :func:`~attnlab.infer.decoding.translate` reads it); with a ``prefix``, the
    translation's first words are forced to it, as
    :func:`~attnlab.infer.forcing.force_prefix` forces them."""
    source = read_source(sentence, src_vocab, max_src_len, model=model)
    forced = None
    if prefix is not None:  # an empty one is refused, not ignored
        forced = read_prefix(prefix, tgt_vocab, max_len, model=model)
    trace: list = []
    (best_ids,) = beam_search(
        model,
        source.src,
        source.src_len,
        bos_id=tgt_vocab.bos_id,
        eos_id=tgt_vocab.eos_id,
        max_len=max_len,
        beam_size=beam_size,
        alpha=alpha,
        pad_id=tgt_vocab.pad_id,
        trace=trace,
        prefix=forced.ids if forced else None,
    )
    steps = _steps(trace, tgt_vocab)
    best = _find(steps, tuple(best_ids))
    words = tgt_vocab.decode(list(best.ids))
    # A forced step has one candidate: the log-probability it adds is its word's.
    logps = [
        0.0,
        *(step[0].logp for step in steps[: len(forced.words) if forced else 0]),
    ]
    return BeamTranslation(
        source=source.tokens,
        unknown=source.unknown,
        truncated=source.truncated,
        beam_size=beam_size,
        alpha=alpha,
        steps=steps,
        best=best,
        tokens=words,
        text=detokenize(words),
        forced=forced.words if forced else [],
        forced_unknown=forced.unknown if forced else [],
        forced_probs=[math.exp(b - a) for a, b in zip(logps, logps[1:])],
    )


def _steps(trace: list, tgt_vocab: Vocab) -> list[list[Hypothesis]]:
    """The first sentence's candidates, step by step, from beam_search's records."""
    steps, beam = [], [()]  # beam: the live prefixes, by place
    for record in trace:
        r = {f.name: getattr(record, f.name)[0].tolist() for f in fields(record)}
        if not any(r["read"]):
            break  # done: on an accelerator the loop may idle a few steps after
        step, next_beam = [], []
        for j, read in enumerate(r["read"]):
            if not read:
                continue
            ids = (*beam[r["parent"][j]], r["token"][j])
            goes_on = r["goes_on"][j]
            step.append(
                Hypothesis(
                    ids=ids,
                    words=tuple(tgt_vocab.itos[i] for i in ids),
                    logp=r["logp"][j],
                    score=r["score"][j],
                    parent=r["parent"][j],
                    ended=r["ends"][j],
                    place=len(next_beam) if goes_on else None,
                )
            )
            if goes_on:
                next_beam.append(ids)
        steps.append(step)
        beam = next_beam
    return steps


def _find(steps: list[list[Hypothesis]], ids: tuple[int, ...]) -> Hypothesis:
    """The hypothesis beam_search chose: an ended one, or one of the last live ones."""
    ended = [h for step in steps for h in step if h.ended and h.ids == ids]
    live = [h for h in steps[-1] if h.place is not None and h.ids == ids]
    (found,) = ended or live
    return found
