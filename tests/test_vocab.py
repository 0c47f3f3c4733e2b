"""Vocabularies: reserved ids, a deterministic order, coverage."""

from __future__ import annotations

import pytest

from attnlab.data.vocab import Vocab


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
