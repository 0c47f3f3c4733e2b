"""Byte-pair encoding: learnt by hand-checkable rules, reversible, and the same as a
maintained implementation (Hugging Face ``tokenizers``) on the course's corpus."""

from __future__ import annotations

import json
import random

import pytest

from attnlab.data import corpus, dataset, subwords
from attnlab.data.subwords import BPE, END, learn_bpe, word_counts

# Sennrich et al.'s (2016) example vocabulary: words and how often they occur.
SENNRICH = {"low": 5, "lower": 2, "newest": 6, "widest": 3}


def test_first_merges_by_hand():
    """Pair counts: e+s 9 and s+t</w> 9 (a tie, to the pair that sorts first), w+e 8,
    l+o 7. After e+s, es+t</w> has 9 and comes next; then l+o; then e+w, n+e and
    w+est</w> tie at 6 (newest: 6 times)."""
    bpe = learn_bpe(SENNRICH, 4)
    assert bpe.merges == (("e", "s"), ("es", "t" + END), ("l", "o"), ("e", "w"))


def test_segmenting_applies_the_merges_in_order():
    bpe = learn_bpe(SENNRICH, 10)
    assert bpe.merges[4:] == (
        ("ew", "est" + END),
        ("n", "ewest" + END),
        ("lo", "w" + END),
        ("d", "est" + END),
        ("i", "dest" + END),
        ("w", "idest" + END),
    )
    assert bpe.segment("newest") == ["newest"]
    assert bpe.segment("lowest") == ["lo@@", "w@@", "est"]  # never seen: known pieces
    assert bpe.segment("wider") == ["w@@", "i@@", "d@@", "e@@", "r"]
    assert learn_bpe(SENNRICH, 0).segment("low") == ["l@@", "o@@", "w"]


def test_word_order_does_not_change_what_is_learnt():
    shuffled = dict(random.Random(1).sample(sorted(SENNRICH.items()), len(SENNRICH)))
    assert learn_bpe(shuffled, 8) == learn_bpe(SENNRICH, 8)


def test_learning_stops_when_every_word_is_one_symbol():
    bpe = learn_bpe({"ab": 3, "a": 1}, 50)
    assert bpe.merges == (("a", "b" + END),)


def test_a_prefix_of_the_merges_is_the_smaller_model():
    counts = {"travaillons": 3, "travaille": 5, "mangeons": 2, "mange": 4}
    big = learn_bpe(counts, 12)
    assert learn_bpe(counts, 5).merges == big.merges[:5]
    assert BPE(big.merges[:5]).segment("travaillons") == learn_bpe(counts, 5).segment(
        "travaillons"
    )


@pytest.mark.parametrize(
    "sentence",
    [
        "Il a 3 chats, non ?",
        "Je travaillais là-bas !",
        "I'm OK.",
        "Cours\u202f!",
        "anticonstitutionnellement",
        "a",
    ],
)
def test_subwords_join_back_to_the_same_text(sentence):
    tokens = corpus.tokenize(sentence)
    bpe = learn_bpe(
        word_counts([corpus.tokenize("je travaille, il travaillait .")]), 20
    )
    pieces = bpe.encode(tokens)
    assert len(pieces) >= len(tokens)
    assert corpus.join_pieces(pieces) == tokens
    assert corpus.detokenize(pieces) == corpus.detokenize(tokens)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="num_merges"):
        learn_bpe(SENNRICH, -1)
    with pytest.raises(ValueError, match="empty word"):
        learn_bpe(SENNRICH, 3).segment("")


@pytest.fixture(scope="module")
def fra_eng(fra_eng_pairs):
    pairs = list(fra_eng_pairs)
    return dataset.translation_data(
        pairs[::20], max_len=10, seed=0, n_val=200, n_test=500
    )


@pytest.mark.parametrize("side", [0, 1], ids=["English", "French"])
def test_agrees_with_hugging_face_tokenizers(fra_eng, side):
    """The same number of merges learnt by ``tokenizers`` on the same training words: the
    same first merges, nearly the same set (equally frequent pairs may be taken in
    another order), and the same pieces for almost every held-out word."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    counts = word_counts(pair[side] for pair in fra_eng.train)
    ours = learn_bpe(counts, 1000)
    alphabet = {s for word in counts for s in subwords._symbols(word)}
    theirs = Tokenizer(models.BPE(end_of_word_suffix=END))
    theirs.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    theirs.train_from_iterator(
        (" ".join(pair[side]) for pair in fra_eng.train),
        trainers.BpeTrainer(
            vocab_size=len(alphabet) + 1000,
            show_progress=False,
            end_of_word_suffix=END,
            special_tokens=[],
        ),
    )
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
        for m in json.loads(theirs.to_str())["model"]["merges"]
    ]
    assert ours.merges[:10] == tuple(merges[:10])
    assert len(set(ours.merges) & set(merges)) >= 0.9 * len(merges)
    words = [word for pair in fra_eng.test for word in pair[side]]
    same = sum(
        [p.removesuffix("@@") for p in ours.segment(word)]
        == [t.value.removesuffix(END) for t in theirs.model.tokenize(word)]
        for word in words
    )
    assert same >= 0.97 * len(words)


def test_subword_data_keeps_the_sentences(fra_eng):
    pieces = subwords.subword_data(fra_eng, src_merges=300, tgt_merges=400)
    assert pieces.name == "translation-bpe" and pieces.units == "subwords"
    assert pieces.info["src_merges"] == 300 and len(pieces.info["tgt_bpe"]) == 16
    assert len(pieces.test) == len(fra_eng.test)
    # The references scored against are the word-level task's, unchanged.
    assert pieces.references("test")[1] == fra_eng.references("test")[1]
    assert all(len(s) >= len(w) for (s, _), (w, _) in zip(pieces.train, fra_eng.train))
    # Every training piece is in the vocabulary: no <unk> in training.
    assert all(token in pieces.src_vocab.stoi for s, _ in pieces.train for token in s)
    # Fewer merges, another model, another cache key.
    assert (
        subwords.subword_data(fra_eng, src_merges=200, tgt_merges=400).info["src_bpe"]
        != pieces.info["src_bpe"]
    )
