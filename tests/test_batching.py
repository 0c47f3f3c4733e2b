"""Batches for teacher forcing, length buckets, loaders and random batches."""

from __future__ import annotations

import pytest
import torch

from attnlab.data.batching import (
    BucketBatchSampler,
    PairDataset,
    make_loader,
    random_batch,
)
from attnlab.data.dataset import translation_data
from attnlab.data.vocab import Vocab


def test_batch_layout_for_teacher_forcing():
    vocab = Vocab([["a", "b", "c"]])
    dataset = PairDataset([(["a", "b", "c"], ["c"]), (["a"], ["b", "a"])], vocab, vocab)
    batch = dataset.collate([dataset[0], dataset[1]])
    a, b, c, eos, bos, pad = (
        vocab.stoi[t] for t in ["a", "b", "c", "<eos>", "<bos>", "<pad>"]
    )
    assert batch.src.tolist() == [[a, b, c, eos], [a, eos, pad, pad]]
    assert batch.src_len.tolist() == [4, 2]
    assert batch.tgt_in.tolist() == [[bos, c, pad], [bos, b, a]]
    assert batch.tgt_out.tolist() == [[c, eos, pad], [b, a, eos]]
    assert batch.src_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert batch.tgt_mask.tolist() == [[True, True, False], [True, True, True]]


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


def test_a_token_budget_caps_each_batch_and_covers_each_item_once():
    """max_tokens: no batch holds more positions padded than the budget (but a
    sentence longer than it, alone), at most batch_size sentences, every item once an
    epoch; long sentences come in smaller batches, so steps see similar token counts."""
    lengths = [(i * 7919) % 37 + 1 for i in range(1000)] + [300]
    sampler = BucketBatchSampler(lengths, 64, seed=1, max_tokens=256)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1001))
    padded = {tuple(b): len(b) * max(lengths[i] for i in b) for b in batches}
    assert [b for b, n in padded.items() if n > 256] == [(1000,)]
    assert max(len(b) for b in batches) == 64  # the 4-token sentences: 64 * 4 = 256
    short = [len(b) for b in batches if max(lengths[i] for i in b) <= 8]
    long = [len(b) for b in batches if 30 <= max(lengths[i] for i in b) <= 37]
    assert min(short) > max(long)
    # Most batches come close to the budget: bucketing keeps lengths alike.
    full = [n for b, n in padded.items() if n <= 256]
    assert sum(full) / len(full) > 0.8 * 256
    assert list(BucketBatchSampler(lengths, 64, seed=1, max_tokens=256)) == batches


def test_a_token_budget_refuses_what_it_cannot_keep():
    with pytest.raises(ValueError, match="max_tokens must be positive, got 0"):
        BucketBatchSampler([3, 4], 8, max_tokens=0)
    with pytest.raises(ValueError, match="drop_last keeps only full batches"):
        BucketBatchSampler([3, 4], 8, max_tokens=64, drop_last=True)


def test_loader_yields_batches(fra_eng_pairs):
    data = translation_data(list(fra_eng_pairs[:3000]), n_val=50, n_test=50)
    loader = data.loader("train", 64)
    batches = list(loader)
    assert sum(len(b) for b in batches) == len(data.train)
    assert all(b.src.shape[0] == b.tgt_in.shape[0] for b in batches)


def test_random_batch_has_no_padding_and_aligned_targets():
    batch = random_batch(12, 9, 5, 3, generator=torch.Generator().manual_seed(0))
    assert batch.src.shape == (3, 5) and batch.tgt_in.shape == batch.tgt_out.shape == (
        3,
        5,
    )
    assert batch.src.min() >= 4 and batch.tgt_out.max() < 9  # no reserved ids
    assert batch.src_mask.all() and batch.tgt_mask.all()
    assert torch.equal(batch.tgt_in[:, 1:], batch.tgt_out[:, :-1])  # shifted by one


def test_batches_are_pinned_for_a_gpu_only_when_there_is_one(fra_eng_pairs):
    data = translation_data(list(fra_eng_pairs[:500]), n_val=50, n_test=50)
    assert data.loader("train", 64).pin_memory == torch.cuda.is_available()
    assert make_loader(data.dataset("val"), 8, pin_memory=False).pin_memory is False
    batch = next(iter(data.loader("val", 8)))
    moved = batch.to("cpu", non_blocking=True)
    assert all(
        torch.equal(getattr(moved, f), getattr(batch, f))
        for f in ("src", "src_len", "tgt_in", "tgt_out", "tgt_len")
    )
    if torch.cuda.is_available():
        assert batch.pin_memory().src.is_pinned()
