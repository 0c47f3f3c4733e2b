"""Subword units: byte-pair encoding (Sennrich et al., 2016), learnt on training data.

A word starts as the sequence of its characters, the last one marked as ending the
word (``</w>``, so that a piece at the end of a word and the same letters inside one
stay different). Learning repeats one step: count every pair of adjacent symbols over
the training words, each word weighted by how often it occurs, and merge the most
frequent pair into one symbol everywhere. The list of merges, in order, is the model;
segmenting a word applies them in the same order. Any word, even one never seen,
splits into pieces the model knows, down to single characters.

In the tokens this module writes, a piece that does not end its word carries a trailing
``@@`` (Sennrich et al.'s convention): ``["tra@@", "vail@@", "lons"]`` is one word, and
:func:`attnlab.data.corpus.join_pieces` (which :func:`attnlab.data.corpus.detokenize`
calls) glues it back. In a subword task, length buckets count pieces.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from attnlab.data.corpus import JOINER
from attnlab.data.dataset import Seq2SeqData, Tokens
from attnlab.data.vocab import Vocab

END = "</w>"  # marks a symbol that ends its word, while learning and segmenting

Pair = tuple[str, str]


def _symbols(word: str) -> list[str]:
    """A word as its characters, the last one marked as ending the word."""
    if not word:
        raise ValueError("cannot segment an empty word")
    return [*word[:-1], word[-1] + END]


@dataclass(frozen=True)
class BPE:
    """A learnt byte-pair encoding: its merges, in the order they were learnt."""

    merges: tuple[Pair, ...]
    _rank: dict[Pair, int] = field(init=False, repr=False, compare=False)
    _cache: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        ranks = {pair: i for i, pair in enumerate(self.merges)}
        object.__setattr__(self, "_rank", ranks)
        object.__setattr__(self, "_cache", {})

    def segment(self, word: str) -> list[str]:
        """The pieces of one word, written as tokens: ``"travaillons"`` ->
        ``["tra@@", "vail@@", "lons"]`` (which pieces depends on the merges)."""
        if word not in self._cache:
            symbols, never = _symbols(word), len(self.merges)
            while len(symbols) > 1:
                # Merge the adjacent pair that training merged first, then look again.
                rank, i = min(
                    (self._rank.get(pair, never), i)
                    for i, pair in enumerate(zip(symbols, symbols[1:]))
                )
                if rank == never:
                    break  # no learnt merge applies
                symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
            self._cache[word] = tuple(
                s.removesuffix(END) if s.endswith(END) else s + JOINER for s in symbols
            )
        return list(self._cache[word])

    def encode(self, tokens: Iterable[str]) -> list[str]:
        """A tokenised sentence (words) -> its subword tokens."""
        return [piece for word in tokens for piece in self.segment(word)]

    def fingerprint(self) -> str:
        """A short hash of the merges: what a cache key needs to know of this model."""
        text = "\n".join(f"{a} {b}" for a, b in self.merges)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def learn_bpe(word_counts: Mapping[str, int], num_merges: int) -> BPE:
    """Learn up to ``num_merges`` merges from words and their counts (fewer if every
    word has become one symbol). Ties between equally frequent pairs go to the pair
    that sorts first, so the result does not depend on the order of the words."""
    if num_merges < 0:
        raise ValueError(f"num_merges must be zero or more, got {num_merges}")
    words = [_symbols(word) for word in word_counts]
    counts = list(word_counts.values())
    pairs: Counter[Pair] = Counter()  # pair -> count over all words
    where: defaultdict[Pair, set[int]] = defaultdict(set)  # pair -> words having it
    for i, symbols in enumerate(words):
        for pair in zip(symbols, symbols[1:]):
            pairs[pair] += counts[i]
            where[pair].add(i)
    # A heap of (-count, pair) entries; an entry whose count has changed is skipped.
    heap = [(-n, pair) for pair, n in pairs.items()]
    heapq.heapify(heap)
    merges: list[Pair] = []
    while len(merges) < num_merges and heap:
        negative, best = heapq.heappop(heap)
        if pairs.get(best, 0) != -negative:
            continue  # stale: its count has changed
        merges.append(best)
        changed: set[Pair] = set()
        for i in sorted(where.pop(best)):
            old, n = words[i], counts[i]
            new = _merge(old, best)
            for pair in zip(old, old[1:]):  # the word's old pairs out...
                pairs[pair] -= n
                changed.add(pair)
            for pair in zip(new, new[1:]):  # ...and its new pairs in
                pairs[pair] += n
                where[pair].add(i)
                changed.add(pair)
            words[i] = new
        for pair in changed:  # every changed count is queued again
            if pairs[pair] > 0:
                heapq.heappush(heap, (-pairs[pair], pair))
            else:
                del pairs[pair]
                where.pop(pair, None)
    return BPE(tuple(merges))


def _merge(symbols: list[str], pair: Pair) -> list[str]:
    """``symbols`` with every occurrence of ``pair`` merged into one symbol."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def word_counts(sentences: Iterable[Sequence[str]]) -> Counter[str]:
    """How often each word occurs in tokenised sentences."""
    return Counter(word for sentence in sentences for word in sentence)


def subword_data(data: Seq2SeqData, *, src_merges: int, tgt_merges: int) -> Seq2SeqData:
    """``data`` in subword units: a BPE learnt on each side of the training split
    only, applied to all three splits, and vocabularies of every piece seen in
    training. The sentences are the same, so test scores on detokenised text compare
    with the word-level task's."""
    src_bpe = learn_bpe(word_counts(s for s, _ in data.train), src_merges)
    tgt_bpe = learn_bpe(word_counts(t for _, t in data.train), tgt_merges)

    def convert(pairs: list[tuple[Tokens, Tokens]]) -> list[tuple[Tokens, Tokens]]:
        return [(src_bpe.encode(s), tgt_bpe.encode(t)) for s, t in pairs]

    train = convert(data.train)
    return dataclasses.replace(
        data,
        name=f"{data.name}-bpe",
        train=train,
        val=convert(data.val),
        test=convert(data.test),
        src_vocab=Vocab((s for s, _ in train), min_freq=1),
        tgt_vocab=Vocab((t for _, t in train), min_freq=1),
        units="subwords",
        info={
            **data.info,
            "src_merges": src_merges,
            "tgt_merges": tgt_merges,
            "src_bpe": src_bpe.fingerprint(),
            "tgt_bpe": tgt_bpe.fingerprint(),
        },
    )
