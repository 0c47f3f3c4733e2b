"""Vocabularies, splits, batches and synthetic tasks."""

from __future__ import annotations

import pytest
import torch

from attnlab.data import corpus
from attnlab.data.dataset import (
    cached_data,
    load_data,
    save_data,
    split_by_source,
    translation_data,
)
from attnlab.data.vocab import Vocab

# --- vocabulary ----------------------------------------------------------------------


# --- splits ----------------------------------------------------------------------------


def _pairs():
    # Several translations for some sources, as in Tatoeba.
    raw = [(f"sentence {i % 40} .", f"phrase {i} .") for i in range(120)]
    return [(corpus.tokenize(s), corpus.tokenize(t)) for s, t in raw]


def test_split_is_by_source_disjoint_and_complete():
    pairs = _pairs()
    train, val, test = split_by_source(pairs, n_val=5, n_test=8, seed=0)
    key = lambda split: {" ".join(s) for s, _ in split}  # noqa: E731
    assert len(key(test)) == 8 and len(key(val)) == 5
    assert (
        not key(train) & key(test)
        and not key(train) & key(val)
        and not key(val) & key(test)
    )
    assert len(train) + len(val) + len(test) == len(pairs)
    # Every translation of a test source is in test.
    assert sum(1 for s, _ in pairs if " ".join(s) in key(test)) == len(test)


def test_split_is_deterministic_and_order_independent():
    pairs = _pairs()
    first = split_by_source(pairs, n_val=5, n_test=8, seed=3)
    again = split_by_source(list(reversed(pairs)), n_val=5, n_test=8, seed=3)
    assert sorted(map(str, first[2])) == sorted(map(str, again[2]))
    other = split_by_source(pairs, n_val=5, n_test=8, seed=4)
    assert sorted(map(str, first[2])) != sorted(map(str, other[2]))
    with pytest.raises(ValueError, match="cannot hold out"):
        split_by_source(pairs, n_val=20, n_test=20)


def test_a_split_by_length_holds_out_sources_of_every_length():
    """With edges, the test split takes n_test sources of each length bucket, half of
    a bucket that has fewer than twice that, none longer than the last edge, and the
    rest is split as before: disjoint, complete, the same in any order."""
    raw = [
        (" ".join(["w"] * n + [str(i)]), f"p {i}")
        for n in range(1, 9)
        for i in range(n * 6)
    ]
    raw += [("a b c d e f g h i j", "long")] * 2  # 10 tokens, beyond the last edge
    pairs = [(corpus.tokenize(s), corpus.tokenize(t)) for s, t in raw]
    train, val, test = split_by_source(
        pairs, n_val=4, n_test=10, seed=0, edges=(3, 6, 9)
    )
    lengths = [len(s) for s, _ in test]
    # bucket 1-3: lengths 2-3 hold 6 + 12 sources (9 held out: half, < 2 x 10);
    # 4-6: 18 + 24 + 30 (10); 7-9: 36 + 42 (10).
    assert [
        sum(low <= n <= high for n in lengths) for low, high in ((1, 3), (4, 6), (7, 9))
    ] == [9, 10, 10]
    assert not any(len(s) == 10 for s, _ in test)
    assert len(train) + len(val) + len(test) == len(pairs)
    key = lambda split: {" ".join(s) for s, _ in split}  # noqa: E731
    assert (
        not key(train) & key(test) and not key(val) & key(test) and len(key(val)) == 4
    )
    again = split_by_source(
        list(reversed(pairs)), n_val=4, n_test=10, seed=0, edges=(3, 6, 9)
    )
    assert key(again[2]) == key(test)
    with pytest.raises(ValueError, match="increasing positive"):
        split_by_source(pairs, n_val=4, n_test=10, edges=(6, 3))


def test_translation_data_on_the_real_corpus(fra_eng_pairs):
    pairs = list(fra_eng_pairs)
    small = translation_data(pairs, max_len=10, n_train=2_000, n_val=100, n_test=200)
    large = translation_data(pairs, max_len=10, n_train=5_000, n_val=100, n_test=200)
    assert small.info["pairs_kept"] == 140_658  # pairs with at most 10 tokens a side
    assert small.test == large.test  # the test set does not depend on the training size
    train_sources = {tuple(s) for s, _ in small.train}
    assert not train_sources & {tuple(s) for s, _ in small.test}
    sources, refs = small.references("test")
    assert len(sources) == 200 and sum(map(len, refs)) >= 200
    assert any(len(r) > 1 for r in refs)  # several references for some sentences
    # Vocabularies come from training data only.
    assert small.src_vocab == Vocab((s for s, _ in small.train), min_freq=2)
    with pytest.raises(ValueError, match="unknown split"):
        small.split("dev")


def _small_task():
    pairs = [(f"i saw {n} cats .", f"j'ai vu {n} chats .") for n in range(40)]
    pairs += [("hello !", "bonjour !"), ("hello !", "salut !")]
    return translation_data(
        pairs, name="cats", max_len=6, min_freq=1, n_val=5, n_test=5
    )


def test_data_written_reads_back_the_same(tmp_path):
    task = _small_task()
    save_data(task, tmp_path / "cats.json.gz")
    again = load_data(tmp_path / "cats.json.gz")
    assert again == task  # every field: pairs, vocabularies, info
    assert isinstance(again.train[0], tuple) and again.length_edges == task.length_edges
    save_data(again, tmp_path / "again.json.gz")  # the same data, the same bytes
    assert (tmp_path / "again.json.gz").read_bytes() == (
        tmp_path / "cats.json.gz"
    ).read_bytes()


def test_cached_data_is_made_once_and_made_again_if_the_file_is_broken(tmp_path):
    made = []

    def make():
        made.append(1)
        return _small_task()

    path = tmp_path / "data" / "cats.json.gz"
    first, second = cached_data(path, make), cached_data(path, make)
    assert first == second and len(made) == 1
    path.write_bytes(path.read_bytes()[:40])  # cut short
    with pytest.warns(RuntimeWarning, match="does not read"):
        third = cached_data(path, make)
    assert third == first and len(made) == 2 and load_data(path) == first
    assert [p.name for p in path.parent.iterdir()] == ["cats.json.gz"]  # no leftovers
    path.write_text("{}")
    with pytest.raises(OSError):  # not gzip: read by load_data, refused
        load_data(path)


# --- batches -----------------------------------------------------------------------------


# --- synthetic tasks ------------------------------------------------------------------------


def test_any_parallel_corpus_goes_through_the_same_pipeline(tmp_path):
    """A reader's own corpus, as a TSV or as two aligned files, becomes batches like fra-eng."""
    english = [
        f"the {animal} sees the {thing} ."
        for animal in ("cat", "dog", "bird", "fox")
        for thing in ("tree", "house", "river", "car", "moon")
    ]
    german = [f"die {i} sieht das {j} ." for i in range(4) for j in range(5)]
    (tmp_path / "pairs.tsv").write_text(
        "".join(f"{e}\t{g}\n" for e, g in zip(english, german)), encoding="utf-8"
    )
    (tmp_path / "en.txt").write_text("\n".join(english) + "\n", encoding="utf-8")
    (tmp_path / "de.txt").write_text("\n".join(german) + "\n", encoding="utf-8")
    from_tsv = corpus.read_tsv(tmp_path / "pairs.tsv")
    assert from_tsv == corpus.read_parallel_files(
        tmp_path / "en.txt", tmp_path / "de.txt"
    )
    data = translation_data(
        from_tsv, name="en-de", max_len=8, min_freq=1, n_val=2, n_test=3
    )
    assert len(data.test) == 3 and len(data.val) == 2 and len(data.train) == 15
    batch = next(iter(data.loader("train", 4)))
    assert batch.src.shape[0] == 4 and batch.src_mask.dtype == torch.bool
    assert data.src_vocab.decode(batch.src[0].tolist())[0] == "the"
