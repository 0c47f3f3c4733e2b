"""How a write-it exercise is checked: the learner's function against the library's.

A checker (see :mod:`attnlab.course.check`) runs both functions on the same inputs, case
by case (random inputs, then the edge cases: padding, length 1, a fully masked row, a
batch of one, another device when there is one), and stops at the **first** case where
they disagree. It answers with a :class:`Report`: one line when everything passes;
otherwise the case, what was expected and what came back (shapes named in the course's
alphabet), and the likely cause when the wrong answer is one of the typical mistakes.
The checker computes what each typical mistake gives on the same inputs and names the
one the learner's answer matches: the diagnosis is measured, not guessed.

A checker never prints: the notebook shows the report it returns.
"""

from __future__ import annotations

import copy
import linecache
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Report:
    """What a checker found. ``bool(report)`` is whether every case passed."""

    exercise: str
    passed: bool
    message: str
    case: str | None = None  # the first failing case, if any
    cause: str | None = None  # the likely cause named in the message, if any
    written: bool = True  # False while the stub raises NotImplementedError

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:  # what a notebook shows
        return self.message


@dataclass
class Case:
    """One set of inputs, described in a learner's words. ``build(device)`` returns the
    keyword arguments of both functions (fresh tensors at every call)."""

    name: str
    build: Callable[[torch.device], dict]
    notes: dict = field(default_factory=dict)  # extra facts a diagnosis may use


@dataclass
class Mistake:
    """A typical mistake: what it computes (``wrong(**inputs)``), and the cause to name
    when the learner's output matches it."""

    cause: str
    wrong: Callable[..., object]


class Mismatch(Exception):
    """Raised by a comparison: ``text`` says what differs, in words."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


# --- comparing outputs ---------------------------------------------------------------


def shape_text(shape: Sequence[int], axes: str | None) -> str:
    """(2, 3, 4) with axes "B T S" -> "(B, T, S) = (2, 3, 4)"."""
    numbers = "(" + ", ".join(str(n) for n in shape) + ")"
    if axes is None or len(axes.split()) != len(shape):
        return numbers
    return "(" + ", ".join(axes.split()) + ") = " + numbers


def compare_tensor(
    expected: torch.Tensor,
    got,
    *,
    what: str,
    axes: str | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> None:
    """Raise :class:`Mismatch` saying how ``got`` differs from ``expected``."""
    if got is None:
        raise Mismatch(
            f"expected {what} of shape {shape_text(expected.shape, axes)}; "
            "got None (is a `return` missing?)"
        )
    if not isinstance(got, torch.Tensor):
        raise Mismatch(
            f"expected {what} as a tensor of shape "
            f"{shape_text(expected.shape, axes)}; got a "
            f"{type(got).__name__}"
        )
    if tuple(got.shape) != tuple(expected.shape):
        raise Mismatch(
            f"expected {what} of shape {shape_text(expected.shape, axes)}; "
            f"got shape {tuple(got.shape)}"
        )
    if expected.dtype == torch.bool and got.dtype != torch.bool:
        raise Mismatch(
            f"expected {what} as a boolean tensor (True = may attend); got "
            f"dtype {got.dtype}"
        )
    got = got.detach().cpu()
    expected = expected.detach().cpu()
    if expected.dtype == torch.bool or not expected.is_floating_point():
        wrong = (got != expected).nonzero()
        if len(wrong):
            where = tuple(wrong[0].tolist())
            raise Mismatch(
                f"{what}: right shape, but {len(wrong)} of the "
                f"{expected.numel()} entries differ; the first at "
                f"{list(where)}: expected {expected[where].item()}, got "
                f"{got[where].item()}"
            )
        return
    got = got.to(expected.dtype)
    if torch.isnan(got).any() and not torch.isnan(expected).any():
        where = tuple(torch.isnan(got).nonzero()[0].tolist())
        raise Mismatch(
            f"{what}: right shape, but NaN (first at "
            f"{list(where)}) where no NaN is expected"
        )
    close = torch.isclose(got, expected, atol=atol, rtol=rtol)
    if not bool(close.all()):
        where = tuple((~close).nonzero()[0].tolist())
        index = list(where) if where else "the value"
        at = f" at {index}" if where else ""
        raise Mismatch(
            f"{what}: right shape, but {(~close).sum()} of "
            f"{expected.numel()} values differ; first{at}: expected "
            f"{expected[where].item():.4f}, got {got[where].item():.4f}"
        )


def same(a, b, *, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """Whether two outputs (tensors, or tuples and lists of them) are equal within the
    tolerance; never raises."""
    try:
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            if a.shape != b.shape:
                return False
            a, b = a.detach().cpu(), b.detach().cpu()
            if a.is_floating_point() or b.is_floating_point():
                return bool(
                    torch.allclose(
                        a.double(), b.double(), atol=atol, rtol=rtol, equal_nan=True
                    )
                )
            return bool((a == b).all())
        if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            return False  # a tensor and something else
        if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
            return len(a) == len(b) and all(
                same(x, y, atol=atol, rtol=rtol) for x, y in zip(a, b)
            )
        return a == b
    except Exception:  # a mistake's model that cannot run on these inputs
        return False


# --- running the cases ---------------------------------------------------------------


def devices() -> list[torch.device]:
    """The CPU, and the accelerator when there is one: the checkers repeat their first
    case there."""
    found = [torch.device("cpu")]
    if torch.cuda.is_available():
        found.append(torch.device("cuda"))
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append(torch.device("mps"))
    return found


def with_devices(cases: list[Case]) -> list[Case]:
    """``cases``, and the first one again on the accelerator if there is one."""
    extra = [
        Case(
            f"{cases[0].name}, on {device.type}",
            lambda _d, build=cases[0].build, device=device: build(device),
            cases[0].notes,
        )
        for device in devices()[1:]
    ]
    return cases + extra


def _fresh(inputs: dict) -> dict:
    """A copy of the inputs, so that a function that changes them in place cannot change
    what the other one sees."""
    return {
        name: (
            value.clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)
        )
        for name, value in inputs.items()
    }


def _your_line(error: BaseException, function: Callable) -> str:
    """The line of the learner's function where ``error`` was raised, if it was."""
    code = getattr(function, "__code__", None)
    if code is None:
        return ""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename == code.co_filename:
            line = frame.line or linecache.getline(frame.filename, frame.lineno)
            line = line.strip()
            if line:
                return f" (in your line `{line}`)"
    return ""


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return first[:160] + ("..." if len(first) > 160 else "")


ERROR_CAUSES = [
    (
        "view size is not compatible",
        "`.view` after a `transpose`: use `.reshape`, or call `.contiguous()` first",
    ),
    (
        "must match the size of tensor",
        "two tensors whose axes do not line up: check which axis each one's sizes are "
        "on, and add a length-1 axis (`x[:, None]`) to broadcast",
    ),
    (
        "mat1 and mat2 shapes cannot be multiplied",
        "a matrix product whose inner sizes differ: is a `transpose(-2, -1)` missing, "
        "or applied to the wrong tensor?",
    ),
    (
        "Expected size for first two dimensions of batch2",
        "a batched matrix product (B, n, m) @ (B, m, p) whose inner sizes differ: is "
        "one of the two tensors transposed, or is a transpose missing?",
    ),
    (
        "Dimension out of range",
        "an axis that the tensor does not have: count its axes "
        "(`x.dim()`) in this case",
    ),
    ("bitwise_not", "`~` on a mask that is not boolean"),
]


def run(
    exercise: str,
    learner: Callable,
    reference: Callable,
    cases: list[Case],
    *,
    compare: Callable[[object, object, Case], None],
    mistakes: Sequence[Mistake] = (),
    explain: Callable[[dict, object, object, Case], str | None] | None = None,
    call: Callable[[Callable, dict], object] | None = None,
) -> Report:
    """Check ``learner`` against ``reference`` on every case; the first failure ends it.

    ``compare(expected, got, case)`` raises :class:`Mismatch`; ``mistakes`` are matched
    against the learner's output to name a cause; ``explain(inputs, expected, got,
    case)`` may name one from properties of the output (weights that do not sum to 1,
    say) when no mistake matched. ``call(function, inputs)`` calls a function on a
    case's inputs (default: ``function(**inputs)``).
    """
    with torch.random.fork_rng(devices=[]):  # the notebook's random state is kept
        return _run(
            exercise,
            learner,
            reference,
            cases,
            compare,
            mistakes,
            explain,
            call or (lambda function, inputs: function(**inputs)),
        )


def _run(
    exercise, learner, reference, cases, compare, mistakes, explain, call
) -> Report:
    if not callable(learner):
        return Report(
            exercise,
            False,
            f"✗ {exercise}: expected a function, got a {type(learner).__name__}.",
            written=False,
        )
    for number, case in enumerate(cases, 1):
        device = torch.device("cpu")
        inputs = case.build(device)
        torch.manual_seed(0)
        expected = call(reference, _fresh(inputs))
        try:
            torch.manual_seed(0)
            got = call(learner, _fresh(inputs))
        except NotImplementedError:
            return Report(
                exercise,
                False,
                f"… {exercise}: not written yet (the stub still raises "
                "NotImplementedError). Write it, then run this cell again.",
                written=False,
            )
        except Exception as error:  # the learner's code failed
            cause = next(
                (text for pattern, text in ERROR_CAUSES if pattern in str(error)), None
            )
            message = (
                f"✗ {exercise} fails on case {number} of {len(cases)}, "
                f'"{case.name}": it raised {type(error).__name__}: '
                f"{_short(error)}{_your_line(error, learner)}."
            )
            if cause:
                message += _likely(cause)
            return Report(exercise, False, message, case.name, cause)
        try:
            compare(expected, got, case)
        except Mismatch as mismatch:
            cause = next(
                (
                    m.cause
                    for m in mistakes
                    if same(got, _call_quietly(call, m.wrong, inputs))
                ),
                None,
            )
            if cause is None and explain is not None:
                cause = explain(inputs, expected, got, case)
            message = (
                f"✗ {exercise} fails on case {number} of {len(cases)}, "
                f'"{case.name}": {mismatch.text}.'
            )
            if cause:
                message += _likely(cause)
            return Report(exercise, False, message, case.name, cause)
    used = " and ".join(d.type for d in devices())
    where = "" if len(devices()) == 1 else f" (on {used})"
    return Report(
        exercise, True, f"✓ {exercise}: passes all {len(cases)} cases{where}."
    )


def _likely(cause: str) -> str:
    return f"\n  Likely cause: {cause}" + ("" if cause.endswith(("?", ".")) else ".")


def _call_quietly(call, function, inputs):
    try:
        torch.manual_seed(0)
        return call(function, _fresh(inputs))
    except Exception:
        return None


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int, device: torch.device) -> torch.Tensor:
    """Seeded normal numbers on ``device`` (drawn on the CPU: the same on every
    device)."""
    return torch.randn(*shape, generator=generator(seed)).to(device)


__all__ = [
    "Case",
    "Mismatch",
    "Mistake",
    "Report",
    "compare_tensor",
    "devices",
    "randn",
    "run",
    "same",
    "shape_text",
    "with_devices",
]
