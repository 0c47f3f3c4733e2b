"""The synthetic tasks: dates and reversal."""

from __future__ import annotations

import datetime as dt

import pytest

from attnlab.data import synthetic


def test_dates_are_correct_deterministic_and_held_out():
    task = synthetic.dates_task(n_train=2000, n_val=100, n_test=100, seed=0)
    assert (
        task.train
        == synthetic.dates_task(n_train=2000, n_val=100, n_test=100, seed=0).train
    )
    for src, tgt in task.train[:200]:
        iso = dt.date.fromisoformat("".join(tgt))
        assert "".join(src) in {f(iso) for f in synthetic.DATE_FORMATS.values()}
    train_days = {"".join(t) for _, t in task.train}
    assert not train_days & {"".join(t) for _, t in task.test}
    assert task.src_vocab.coverage(s for s, _ in task.test) == 1.0
    assert synthetic.date_pair(dt.date(2026, 11, 25), "weekday, month d, yyyy")[
        0
    ] == list("wednesday, november 25, 2026")


def test_reversal_task():
    task = synthetic.reversal_task(
        n_train=500, n_val=50, n_test=50, min_len=5, max_len=45, seed=2
    )
    assert all(t == s[::-1] for s, t in task.train + task.test)
    assert max(len(s) for s, _ in task.train) > 40
    assert not {"".join(s) for s, _ in task.train} & {"".join(s) for s, _ in task.test}
    assert (
        task.test
        == synthetic.reversal_task(
            n_train=500, n_val=50, n_test=50, min_len=5, max_len=45, seed=2
        ).test
    )
    with pytest.raises(ValueError):
        synthetic.reversal_task(min_len=0)
