"""The machinery behind the checkers: what a learner reads, whatever their code does."""

from __future__ import annotations

import torch

from attnlab.course import checking
from attnlab.course.checking import Case, Mismatch, Mistake, compare_tensor


def double(x):
    return 2 * x


def cases():
    return [
        Case("three numbers", lambda d: {"x": torch.tensor([1.0, 2.0, 3.0], device=d)}),
        Case("one number", lambda d: {"x": torch.tensor([5.0], device=d)}),
    ]


def compare(expected, got, case):
    compare_tensor(expected, got, what="the result", axes="B")


def check(function, **kwargs):
    return checking.run("double", function, double, cases(), compare=compare, **kwargs)


def test_a_pass_is_one_line():
    report = check(lambda x: x + x)
    assert report.passed and bool(report)
    assert repr(report) == str(report) == report.message
    assert report.message.startswith("✓ double: passes all 2 cases")


def test_the_first_failing_case_is_named_with_expected_and_got():
    report = check(lambda x: x * x)
    assert not report and report.case == "three numbers"
    assert 'case 1 of 2, "three numbers"' in report.message
    assert "expected 2.0000, got 1.0000" in report.message


def test_a_matching_mistake_names_its_cause():
    report = check(
        lambda x: x + 1,
        mistakes=[
            Mistake("one was added", lambda x: x + 1),
            Mistake("tripled", lambda x: 3 * x),
        ],
    )
    assert report.cause == "one was added"
    assert report.message.endswith("Likely cause: one was added.")


def test_a_mistake_that_does_not_match_names_nothing():
    report = check(lambda x: x - 7, mistakes=[Mistake("tripled", lambda x: 3 * x)])
    assert report.cause is None and "Likely cause" not in report.message


def test_an_exception_is_one_line_with_the_learners_line_not_a_traceback():
    def broken(x):
        return x.view(3, 2)

    report = check(broken)
    assert "it raised RuntimeError" in report.message
    assert "in your line `return x.view(3, 2)`" in report.message
    assert "Traceback" not in report.message and report.message.count("\n") <= 1


def test_a_known_error_gets_its_cause():
    def transposed_view(x):
        return x[:, None].expand(3, 2).t().view(-1)[:3] * 0 + 2 * x

    report = check(transposed_view)
    assert "`.view` after a `transpose`" in report.message


def test_the_stub_is_not_written_yet():
    def stub(x):
        raise NotImplementedError

    report = check(stub)
    assert not report and not report.written and "not written yet" in report.message


def test_not_a_function():
    report = check(42)
    assert not report and "expected a function" in report.message


def test_shapes_and_types_in_words():
    for got, words in [
        (None, "got None (is a `return` missing?)"),
        ([1, 2], "as a tensor of shape (B) = (2)"),
        (torch.zeros(2, 1), "of shape (B) = (2); got shape (2, 1)"),
        (torch.zeros(2), "right shape, but 2 of 2 values differ"),
    ]:
        try:
            compare_tensor(torch.ones(2), got, what="the result", axes="B")
        except Mismatch as mismatch:
            assert words in mismatch.text, mismatch.text
        else:
            raise AssertionError(f"{got!r} passed")
    try:
        compare_tensor(torch.ones(2, dtype=torch.bool), torch.ones(2), what="the mask")
    except Mismatch as mismatch:
        assert "boolean" in mismatch.text
    try:
        compare_tensor(torch.ones(2), torch.tensor([1.0, float("nan")]), what="w")
    except Mismatch as mismatch:
        assert "NaN (first at [1])" in mismatch.text


def test_the_notebooks_random_state_is_left_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check(lambda x: x * torch.rand(()) * 0 + 2 * x)
    assert torch.equal(torch.rand(3), expected)


def test_the_learner_cannot_change_what_the_reference_sees():
    def in_place(x):
        x.mul_(2)
        return x

    assert check(in_place)


def test_same_compares_nested_outputs_and_never_raises():
    assert checking.same(
        (torch.ones(2), [torch.zeros(1)]), (torch.ones(2), [torch.zeros(1)])
    )
    assert not checking.same(torch.ones(2), torch.ones(3))
    assert not checking.same(1.0, torch.tensor(1.0))
    assert not checking.same(torch.ones(2), None)


def test_with_devices_repeats_the_first_case_on_an_accelerator_only():
    extended = checking.with_devices(cases())
    assert len(extended) == len(cases()) + len(checking.devices()) - 1
