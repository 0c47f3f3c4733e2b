"""Vocabularies, splits, batches and synthetic tasks."""

from __future__ import annotations

import datetime as dt

import pytest
import torch

from attnlab import corpus, synthetic
from attnlab.batching import BucketBatchSampler, PairDataset, length_mask
from attnlab.data import split_by_source, translation_data
from attnlab.vocab import Vocab


# --- vocabulary ----------------------------------------------------------------------

def test_reserved_ids_and_frequency_order():
    vocab = Vocab([["b", "a", "b"], ["c", "b", "a"], ["d"]], min_freq=2)
    assert vocab.itos == ["<pad>", "<bos>", "<eos>", "<unk>", "b", "a"]
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert vocab.encode(["a", "c", "b"]) == [5, 3, 4]
    assert vocab.decode([1, 5, 4, 2, 4, 0]) == ["a", "b"]
    assert vocab.decode([1, 5, 2, 0], strip=False) == ["<bos>", "a", "<eos>", "<pad>"]


def test_ties_are_broken_alphabetically_and_round_trip():
    vocab = Vocab([["z", "y", "x"]])
    assert vocab.itos[4:] == ["x", "y", "z"]
    assert Vocab.from_dict(vocab.to_dict()) == vocab


def test_coverage_and_bad_arguments():
    vocab = Vocab([["a", "a", "b"]], min_freq=2)
    assert vocab.coverage([["a", "b"], ["a", "a"]]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="min_freq"):
        Vocab([], min_freq=0)
    with pytest.raises(ValueError, match="reserved"):
        Vocab(tokens=["a", "b"])


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
    assert not key(train) & key(test) and not key(train) & key(val) and not key(val) & key(test)
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


def test_translation_data_on_the_real_corpus(fra_eng_dir):
    pairs = corpus.load_fra_eng(fra_eng_dir)
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


# --- batches -----------------------------------------------------------------------------

def test_batch_layout_for_teacher_forcing():
    vocab = Vocab([["a", "b", "c"]])
    dataset = PairDataset([(["a", "b", "c"], ["c"]), (["a"], ["b", "a"])], vocab, vocab)
    batch = dataset.collate([dataset[0], dataset[1]])
    a, b, c, eos, bos, pad = (vocab.stoi[t] for t in ["a", "b", "c", "<eos>", "<bos>", "<pad>"])
    assert batch.src.tolist() == [[a, b, c, eos], [a, eos, pad, pad]]
    assert batch.src_len.tolist() == [4, 2]
    assert batch.tgt_in.tolist() == [[bos, c, pad], [bos, b, a]]
    assert batch.tgt_out.tolist() == [[c, eos, pad], [b, a, eos]]
    assert batch.src_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert batch.tgt_mask.tolist() == [[True, True, False], [True, True, True]]


def test_length_mask():
    assert length_mask(torch.tensor([0, 2]), 3).tolist() == [[False] * 3, [True, True, False]]


def test_bucketing_reduces_padding_and_covers_each_item_once():
    lengths = [(i * 7919) % 37 + 1 for i in range(1000)]
    sampler = BucketBatchSampler(lengths, 32, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    plain = BucketBatchSampler(lengths, 32, seed=1, bucket=False)
    padded_plain = sum(len(b) * max(lengths[i] for i in b) for b in plain)
    assert padded < 0.8 * padded_plain
    # Same seed and epoch, same batches; the next epoch differs.
    assert list(BucketBatchSampler(lengths, 32, seed=1)) == batches
    assert list(sampler) != batches


def test_loader_yields_batches(fra_eng_dir):
    data = translation_data(corpus.load_fra_eng(fra_eng_dir)[:3000], n_val=50, n_test=50)
    loader = data.loader("train", 64)
    batches = list(loader)
    assert sum(len(b) for b in batches) == len(data.train)
    assert all(b.src.shape[0] == b.tgt_in.shape[0] for b in batches)


# --- synthetic tasks ------------------------------------------------------------------------

def test_dates_are_correct_deterministic_and_held_out():
    task = synthetic.dates_task(n_train=2000, n_val=100, n_test=100, seed=0)
    assert task.train == synthetic.dates_task(n_train=2000, n_val=100, n_test=100, seed=0).train
    for src, tgt in task.train[:200]:
        iso = dt.date.fromisoformat("".join(tgt))
        assert "".join(src) in {f(iso) for f in synthetic.DATE_FORMATS.values()}
    train_days = {"".join(t) for _, t in task.train}
    assert not train_days & {"".join(t) for _, t in task.test}
    assert task.src_vocab.coverage(s for s, _ in task.test) == 1.0
    assert synthetic.date_pair(dt.date(2026, 11, 25), "weekday, month d, yyyy")[0] == list(
        "wednesday, november 25, 2026")


def test_reversal_task():
    task = synthetic.reversal_task(n_train=500, n_val=50, n_test=50, min_len=5, max_len=45, seed=2)
    assert all(t == s[::-1] for s, t in task.train + task.test)
    assert max(len(s) for s, _ in task.train) > 40
    assert not {"".join(s) for s, _ in task.train} & {"".join(s) for s, _ in task.test}
    assert task.test == synthetic.reversal_task(n_train=500, n_val=50, n_test=50, min_len=5,
                                                max_len=45, seed=2).test
    with pytest.raises(ValueError):
        synthetic.reversal_task(min_len=0)


def test_any_parallel_corpus_goes_through_the_same_pipeline(tmp_path):
    """A reader's own corpus, as a TSV or as two aligned files, becomes batches like fra-eng."""
    english = [f"the {animal} sees the {thing} ." for animal in ("cat", "dog", "bird", "fox")
               for thing in ("tree", "house", "river", "car", "moon")]
    german = [f"die {i} sieht das {j} ." for i in range(4) for j in range(5)]
    (tmp_path / "pairs.tsv").write_text("".join(f"{e}\t{g}\n" for e, g in zip(english, german)),
                                        encoding="utf-8")
    (tmp_path / "en.txt").write_text("\n".join(english) + "\n", encoding="utf-8")
    (tmp_path / "de.txt").write_text("\n".join(german) + "\n", encoding="utf-8")
    from_tsv = corpus.read_tsv(tmp_path / "pairs.tsv")
    assert from_tsv == corpus.read_parallel_files(tmp_path / "en.txt", tmp_path / "de.txt")
    data = translation_data(from_tsv, name="en-de", max_len=8, min_freq=1, n_val=2, n_test=3)
    assert len(data.test) == 3 and len(data.val) == 2 and len(data.train) == 15
    batch = next(iter(data.loader("train", 4)))
    assert batch.src.shape[0] == 4 and batch.src_mask.dtype == torch.bool
    assert data.src_vocab.decode(batch.src[0].tolist())[0] == "the"
