"""The debugging lab: every planted bug is real, and its probe gives it away by the
stated margin, in the smoke profile (the tests' and CI's)."""

from __future__ import annotations

import pytest
import torch

from attnlab.core.runtime import get_profile
from attnlab.course import lab
from attnlab.nn import masks


@pytest.fixture(scope="module")
def trained():
    profile = get_profile("smoke")
    data = lab.lab_data(profile)
    correct, found = lab.mysteries(data, profile, progress=False)
    return data, correct, found, lab.readings(correct, found)


def by_bug(found):
    return {m.trained.bug: m for m in found.values()}


def test_eight_bugs_each_with_its_own_probe():
    assert len(lab.BUGS) == 8 and len(lab.BY_KEY) == 8
    assert all(bug.probe in lab.PROBES for bug in lab.BUGS)
    assert len({bug.probe for bug in lab.BUGS}) == 8
    assert len(lab.PROBES) == 10  # and two second opinions


def test_the_letters_hide_the_bugs(trained):
    _, _, found, _ = trained
    assert sorted(found) == list("ABCDEFGH")
    assert sorted(m.trained.bug for m in found.values()) == sorted(lab.BY_KEY)
    assert [m.trained.bug for m in found.values()] != [b.key for b in lab.BUGS]


@pytest.mark.parametrize("bug", [b.key for b in lab.BUGS])
def test_each_probe_gives_its_bug_away_by_the_stated_margin(trained, bug):
    _, _, found, readings = trained
    spec = lab.BY_KEY[bug]
    label = by_bug(found)[bug].label
    ok, bad = readings[spec.probe]["correct"], readings[spec.probe][label]
    assert spec.beyond(ok, bad), (
        f"{spec.probe}: correct {ok}, {bug} {bad} (margin: {spec.margin})"
    )


def test_every_buggy_model_trains_and_its_loss_falls(trained):
    _, correct, found, _ = trained
    for m in [correct, *found.values()]:
        assert len(m.trained.losses) >= 5 and m.trained.losses[-1] < m.trained.losses[0]


def test_the_planted_bugs_are_where_they_say(trained):
    data, correct, found, _ = trained
    bugs = by_bug(found)
    batch = correct.batch
    # the inverted mask puts all of the cross-attention on padding
    assert lab.attention_on_padding(bugs["inverted-mask"]) > 0.99
    # the unshifted batches read the target itself
    assert torch.equal(bugs["unshifted"].batch.tgt_in, bugs["unshifted"].batch.tgt_out)
    assert not torch.equal(batch.tgt_in, batch.tgt_out)
    # a correct decoder layer's weights sum to one over the real keys
    weights = lab._weights(correct.model, batch).encoder[0]
    real = masks.length_mask(batch.src_len, batch.src.shape[1])
    assert torch.allclose(
        weights.sum(-1).transpose(1, 2)[real], torch.ones(1), atol=1e-5
    )


def test_the_second_opinions_react_to_the_inverted_mask(trained):
    _, correct, found, readings = trained
    inverted = by_bug(found)["inverted-mask"].label
    gradient, overfit = readings["source_gradient"], readings["overfit_one_batch"]
    # the loss cannot reach a source that no attention looks at; nor can it fall as far
    assert gradient[inverted] < 1e-8 < gradient["correct"]
    assert overfit[inverted] > 2 * overfit["correct"]


def test_diagnose_confirms_the_right_bug_and_refuses_a_wrong_one(trained):
    _, correct, found, _ = trained
    bugs = by_bug(found)
    right = lab.diagnose(bugs["no-causal-mask"], "no-causal-mask", correct)
    assert right and "future_leak reads 0 instead of" in right.message
    assert right.message.startswith(f"✓ Model {bugs['no-causal-mask'].label}: ")
    wrong = lab.diagnose(bugs["no-causal-mask"], "no-scale", correct)
    assert not wrong and "does not have that bug" in wrong.message
    unknown = lab.diagnose(bugs["no-scale"], "typo", correct)
    assert not unknown and "is not one of the lab's bugs" in unknown.message


def test_an_unknown_bug_is_refused_by_name():
    data = lab.lab_data(get_profile("smoke"))
    with pytest.raises(ValueError, match="unknown bug 'typo'"):
        lab.lab_model(data, "typo")
