"""Scores: corpus BLEU through sacreBLEU with every reference, exact match, by length."""

from __future__ import annotations

import pytest
import sacrebleu

from attnlab.measure import metrics


def test_length_buckets():
    lengths = [1, 3, 4, 5, 6, 10, 11]
    buckets = metrics.length_buckets(lengths, [3, 5, 10])
    assert buckets == [("1-3", [0, 1]), ("4-5", [2, 3]), ("6-10", [4, 5])]
    assert metrics.length_buckets([5, 7], [5, 10], start=5) == [
        ("5", [0]),
        ("6-10", [1]),
    ]


def test_scores_by_length_are_scores_of_the_subsets():
    hyps = ["a b c d", "je suis là", "x y", "le chat dort ici"]
    refs = [["a b c d"], ["je suis ici"], ["x z"], ["le chat dort ici"]]
    rows = metrics.bleu_by_length(hyps, refs, [2, 2, 9, 9], [5, 10])
    assert [r["bucket"] for r in rows] == ["1-5", "6-10"]
    assert rows[0]["bleu"] == pytest.approx(metrics.bleu(hyps[:2], refs[:2]))
    assert rows[1]["sentences"] == 2
    rows = metrics.exact_match_by_length(
        [["a"], ["b"], ["c"]], [["a"], ["x"], ["c"]], [1, 1, 7], [5, 10]
    )
    assert [(r["bucket"], r["exact_match"]) for r in rows] == [
        ("1-5", 0.5),
        ("6-10", 1.0),
    ]


def test_bleu_equals_sacrebleu():
    hyps = ["le chat est sur le tapis.", "il fait beau aujourd'hui."]
    refs = [["le chat est sur le tapis."], ["il fait très beau aujourd'hui."]]
    expected = sacrebleu.corpus_bleu(hyps, [[r[0] for r in refs]]).score
    assert metrics.bleu(hyps, refs) == pytest.approx(expected)
    assert 0 < expected < 100


def test_bleu_uses_every_reference():
    hyps = ["je suis parti.", "regarde!"]
    one = [["je suis partie."], ["attention!"]]
    several = [["je suis partie.", "je suis parti."], ["attention!", "regarde!"]]
    assert metrics.bleu(hyps, several) == pytest.approx(100.0)
    assert metrics.bleu(hyps, one) < 50
    with pytest.raises(ValueError, match="2 hypotheses but 1"):
        metrics.bleu(hyps, one[:1])
    with pytest.raises(ValueError, match="at least one reference"):
        metrics.bleu(hyps, [[], ["x"]])


def test_exact_match():
    assert metrics.exact_match([["a", "b"], ["c"]], [["a", "b"], ["d"]]) == 0.5
    with pytest.raises(ValueError):
        metrics.exact_match([], [])


def test_chrf_and_the_signatures_with_several_references():
    hyps = ["le chat est sur le tapis .", "il pleut ."]
    refs = [
        ["le chat est assis sur le tapis .", "un chat est sur le tapis ."],
        ["il pleut ."],
    ]
    streams = [[r[0] for r in refs], [refs[0][1], None]]
    assert metrics.chrf(hyps, refs) == pytest.approx(
        sacrebleu.corpus_chrf(hyps, streams).score
    )
    # Partial credit for a word right but for its ending, where BLEU sees one wrong word either way.
    ref = [["je suis fatigué ."]]
    near, wrong = ["je suis fatiguée ."], ["je suis malade ."]
    assert metrics.bleu(near, ref) == metrics.bleu(wrong, ref)
    assert metrics.chrf(near, ref) > metrics.chrf(wrong, ref) + 20
    signature = metrics.signature(hyps, refs)
    assert (
        signature["BLEU"].startswith("nrefs:var|case:mixed")
        and "tok:13a" in signature["BLEU"]
    )
    assert (
        signature["chrF"].startswith("nrefs:var|")
        and f"version:{sacrebleu.__version__}" in signature["chrF"]
    )
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference lists"):
        metrics.chrf(hyps, refs[:1])


def _systems():
    references = [
        ["le chat dort ."],
        ["il pleut .", "il tombe des cordes ."],
        ["je suis très fatigué ."],
        ["va !", "pars !"],
        ["elle lit un livre ."],
    ] * 40
    good = [refs[0] for refs in references]
    poor = [
        "le chien dort .",
        "il pleut .",
        "je suis fatigué .",
        "viens !",
        "elle lit un journal .",
    ] * 40
    return references, good, poor


def test_paired_bootstrap_gives_intervals_and_a_paired_test():
    references, good, poor = _systems()
    # a system that differs from the poor one on a few sentences only
    close = list(poor)
    close[0] = good[0]
    found = metrics.paired_bootstrap(
        {"poor": poor, "good": good, "close": close}, references
    )
    assert list(found) == ["poor", "good", "close"]
    assert found["poor"].p_value is None, "the first system is the baseline"
    for name, hyps in (("poor", poor), ("good", good), ("close", close)):
        assert found[name].bleu == pytest.approx(metrics.bleu(hyps, references))
    poor_score = found["poor"]
    assert (
        poor_score.low < poor_score.bleu < poor_score.high
        and poor_score.half_width > 0.5
    )
    assert found["good"].p_value < 0.01, "a far better system on 200 sentences"
    assert found["close"].p_value > 0.05, "one sentence in 200 is not a difference"
    assert (
        str(poor_score)
        == f"{poor_score.bleu:.1f} ({poor_score.low:.1f}-{poor_score.high:.1f})"
    )
    again = metrics.paired_bootstrap(
        {"poor": poor, "good": good, "close": close}, references
    )
    assert again == found, "seeded: the same hypotheses give the same numbers"


def test_paired_bootstrap_by_length_tests_each_bucket_on_its_own_sentences():
    """Within each length bucket, the same numbers as paired_bootstrap on that bucket's
    sentences alone; lengths must be one a sentence."""
    references, good, poor = _systems()
    lengths = [1 + i % 7 for i in range(len(references))]
    found = metrics.paired_bootstrap_by_length(
        {"poor": poor, "good": good}, references, lengths, edges=(3, 7)
    )
    assert list(found) == ["1-3", "4-7"]
    short = [i for i, n in enumerate(lengths) if n <= 3]
    alone = metrics.paired_bootstrap(
        {"poor": [poor[i] for i in short], "good": [good[i] for i in short]},
        [references[i] for i in short],
    )
    assert found["1-3"] == alone
    assert found["4-7"]["good"].p_value < 0.01
    with pytest.raises(ValueError, match="lengths but"):
        metrics.paired_bootstrap_by_length(
            {"poor": poor}, references, lengths[:-1], (7,)
        )


def test_paired_bootstrap_refuses_what_it_cannot_compare():
    references, good, poor = _systems()
    with pytest.raises(ValueError, match="same sentences"):
        metrics.paired_bootstrap({"poor": poor, "good": good[:-1]}, references)
    with pytest.raises(ValueError, match="at least one system"):
        metrics.paired_bootstrap({}, references)
    with pytest.raises(ValueError, match="too few"):
        metrics.paired_bootstrap({"poor": poor}, references, samples=10)
    with pytest.raises(ValueError, match="reference lists"):
        metrics.paired_bootstrap({"poor": poor}, references[:-1])
