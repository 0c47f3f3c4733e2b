"""A sequence-to-sequence data set: token pairs in three splits, with vocabularies.

The held-out **test** split is made once, by source sentence, and nothing in
the course trains or selects models on it: an English sentence and all its
French translations fall in the same split, so no test sentence is ever seen
in training, even with another translation.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import json
import os
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch.utils.data import DataLoader

from attnlab.core.files import atomic_path
from attnlab.data.batching import PairDataset, make_loader
from attnlab.data.corpus import Pair, detokenize, tokenize
from attnlab.data.vocab import Vocab

Tokens = list[str]
TokenPair = tuple[Tokens, Tokens]
SPLITS = ("train", "val", "test")


@dataclass
class Seq2SeqData:
    """Token pairs for ``train``, ``val`` and ``test``, and the vocabularies built on
    ``train``.

    The task describes itself: ``units`` says what a token is (``"words"`` of a
    language, ``"subwords"`` from :mod:`attnlab.data.subwords`, or ``"symbols"`` of a
    synthetic task), which sizes the course's
    models (:data:`attnlab.recipes.experiments.SIZES`); ``length_edges`` are the source
    lengths at which evaluation by length cuts its buckets (e.g. ``(3, 5, 10)``:
    1-3, 4-5, 6-10 tokens).
    """

    name: str
    train: list[TokenPair]
    val: list[TokenPair]
    test: list[TokenPair]
    src_vocab: Vocab
    tgt_vocab: Vocab
    info: dict = field(default_factory=dict)
    units: str = "words"
    length_edges: tuple[int, ...] = ()

    def split(self, name: str) -> list[TokenPair]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {SPLITS}")
        return getattr(self, name)

    def dataset(self, split: str) -> PairDataset:
        return PairDataset(self.split(split), self.src_vocab, self.tgt_vocab)

    def loader(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        max_tokens: int | None = None,
    ) -> DataLoader:
        """Length-bucketed batches of one split (shuffled for ``train`` unless told
        otherwise); with ``world_size`` processes, this one's (``rank``) share of each;
        with ``max_tokens``, batches cut to a token budget
        (:class:`~attnlab.data.batching.BucketBatchSampler`)."""
        shuffle = (split == "train") if shuffle is None else shuffle
        return make_loader(
            self.dataset(split),
            batch_size,
            shuffle=shuffle,
            seed=seed,
            rank=rank,
            world_size=world_size,
            max_tokens=max_tokens,
        )

    def references(self, split: str) -> tuple[list[Tokens], list[list[str]]]:
        """Each distinct source sentence once, with every reference translation of it.

        Returns the source token lists and, for each, its detokenised references
        (in first-seen order), ready for :func:`attnlab.measure.metrics.bleu`.
        """
        grouped: dict[tuple[str, ...], list[str]] = {}
        for src, tgt in self.split(split):
            refs = grouped.setdefault(tuple(src), [])
            text = detokenize(tgt)
            if text not in refs:
                refs.append(text)
        return [list(src) for src in grouped], list(grouped.values())

    def summary(self) -> dict:
        return {
            "name": self.name,
            **{f"{s}_pairs": len(self.split(s)) for s in SPLITS},
            "src_vocab": len(self.src_vocab),
            "tgt_vocab": len(self.tgt_vocab),
            **self.info,
        }


def _rank(key: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}\t{key}".encode()).hexdigest()


def split_by_source(
    pairs: Sequence[TokenPair],
    *,
    n_val: int,
    n_test: int,
    seed: int = 0,
    edges: Sequence[int] | None = None,
) -> tuple[list[TokenPair], list[TokenPair], list[TokenPair]]:
    """Split pairs into train / validation / test by **source sentence**.

    Distinct source sentences are ordered by a seeded hash of their text; the
    first ``n_test`` go to test, the next ``n_val`` to validation, the rest to
    train, each with all of its pairs. The result depends only on the pairs and
    the seed, not on their order in the corpus.

    With ``edges`` (source lengths at which buckets end, e.g. ``(5, 10, 20)``: 1-5,
    6-10, 11-20), the test split takes ``n_test`` sources *of each bucket* instead,
    or half of a bucket's sources where it has fewer than ``2 * n_test``, so that
    scores by length rest on as many sentences at every length as the corpus allows
    while training still sees every length. Sources longer than the last edge go to
    training.
    """
    if n_val < 0 or n_test < 0:
        raise ValueError(f"n_val and n_test cannot be negative: {n_val}, {n_test}")
    sources = sorted({" ".join(src) for src, _ in pairs}, key=lambda s: _rank(s, seed))
    if edges is None:
        test = sources[:n_test]
    else:
        if list(edges) != sorted(set(edges)) or not edges or edges[0] < 1:
            raise ValueError(f"edges must be increasing positive lengths, got {edges}")
        buckets: dict[int, list[str]] = {}
        for source in sources:  # in hash order within each bucket
            bucket = bisect.bisect_left(edges, source.count(" ") + 1)
            buckets.setdefault(bucket, []).append(source)
        test = [
            source
            for bucket, members in buckets.items()
            if bucket < len(edges)
            for source in members[: min(n_test, len(members) // 2)]
        ]
    test_keys = set(test)
    rest = [s for s in sources if s not in test_keys]
    if len(test) + n_val >= len(sources):
        raise ValueError(
            f"cannot hold out {n_val} + {len(test) if edges else n_test} "
            f"of {len(sources)} distinct source sentences "
            "and keep some for training"
        )
    val_keys = set(rest[:n_val])
    train, val, held_out = [], [], []
    for pair in pairs:
        key = " ".join(pair[0])
        (held_out if key in test_keys else val if key in val_keys else train).append(
            pair
        )
    return train, val, held_out


def translation_data(
    pairs: Sequence[Pair],
    *,
    name: str = "translation",
    max_len: int = 10,
    min_freq: int = 2,
    n_train: int | None = None,
    n_val: int = 500,
    n_test: int = 1000,
    seed: int = 0,
    length_edges: Sequence[int] | None = None,
    test_by_length: bool = False,
) -> Seq2SeqData:
    """Tokenise raw pairs, keep those of at most ``max_len`` tokens a side, split, build
    vocabularies.

    ``n_train`` (if given) keeps a seeded random subset of the training pairs
    (the test split is the same whatever ``n_train`` is). Vocabularies are built
    on the training pairs only, keeping tokens seen at least ``min_freq`` times.
    ``length_edges`` default to quarters of ``max_len``; with ``test_by_length``, the
    test split holds ``n_test`` sources of each of their buckets
    (:func:`split_by_source`'s ``edges``).
    """
    length_edges = tuple(
        length_edges or sorted({max(1, max_len * q // 4) for q in (1, 2, 3, 4)})
    )
    tokenised = [(tokenize(src), tokenize(tgt)) for src, tgt in pairs]
    kept = [
        (s, t) for s, t in tokenised if 0 < len(s) <= max_len and 0 < len(t) <= max_len
    ]
    if not kept:
        raise ValueError(
            f"no pair has both sides between 1 and max_len={max_len} tokens"
        )
    train, val, test = split_by_source(
        kept,
        n_val=n_val,
        n_test=n_test,
        seed=seed,
        edges=length_edges if test_by_length else None,
    )
    if n_train is not None and n_train < len(train):
        train = random.Random(seed).sample(train, n_train)
    return Seq2SeqData(
        name=name,
        train=train,
        val=val,
        test=test,
        src_vocab=Vocab((s for s, _ in train), min_freq=min_freq),
        tgt_vocab=Vocab((t for _, t in train), min_freq=min_freq),
        info={
            "max_len": max_len,
            "min_freq": min_freq,
            "seed": seed,
            "pairs_read": len(pairs),
            "pairs_kept": len(kept),
            **({"test_by_length": True} if test_by_length else {}),
        },
        units="words",
        length_edges=length_edges,
    )


def save_data(data: Seq2SeqData, path: str | os.PathLike) -> None:
    """Write ``data`` (pairs, vocabularies, description) to ``path`` as gzipped JSON,
    atomically: a reader never finds half a file."""
    state = {
        "format": 1,
        "name": data.name,
        "units": data.units,
        "length_edges": list(data.length_edges),
        "info": data.info,
        "src_vocab": data.src_vocab.to_dict(),
        "tgt_vocab": data.tgt_vocab.to_dict(),
        **{split: data.split(split) for split in SPLITS},
    }
    with atomic_path(path) as tmp:
        # no name and no time in the header: the same data always makes the same bytes
        with (
            open(tmp, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as out,
        ):
            out.write(json.dumps(state, ensure_ascii=False).encode("utf-8"))


def load_data(path: str | os.PathLike) -> Seq2SeqData:
    """The data :func:`save_data` wrote to ``path``."""
    with gzip.open(path, "rb") as source:
        state = json.loads(source.read().decode("utf-8"))
    if not isinstance(state, dict) or state.get("format") != 1:
        raise ValueError(f"{path} is not a data file of this version of attnlab")
    return Seq2SeqData(
        name=state["name"],
        units=state["units"],
        length_edges=tuple(state["length_edges"]),
        info=state["info"],
        src_vocab=Vocab.from_dict(state["src_vocab"]),
        tgt_vocab=Vocab.from_dict(state["tgt_vocab"]),
        **{split: [(src, tgt) for src, tgt in state[split]] for split in SPLITS},
    )


def cached_data(
    path: str | os.PathLike, make: Callable[[], Seq2SeqData]
) -> Seq2SeqData:
    """``make()``'s data, kept at ``path``: read from there if it is there, else made
    and written there. ``path`` must name everything ``make`` depends on (the corpus,
    the settings, the code: see :func:`attnlab.recipes.experiments.fra_eng_data`). A
    file that does not read is made again, with a warning."""
    path = Path(path)
    if path.exists():
        try:
            return load_data(path)
        except (OSError, EOFError, ValueError, KeyError, TypeError) as error:
            warnings.warn(
                f"the data cache {path} does not read ({error}); making the data again",
                RuntimeWarning,
                stacklevel=2,
            )
    data = make()
    save_data(data, path)
    return data
