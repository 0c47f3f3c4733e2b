"""Sessions die, nothing is lost: resume points, and a model cache keyed by the training code."""

from __future__ import annotations

import random

import pytest
import torch

from attnlab.core import runtime
from attnlab.data import synthetic
from attnlab.models.transformer import Transformer
from attnlab.recipes import experiments
from attnlab.train import resume
from attnlab.train.training import Trainer, warmup_linear_schedule

SMOKE = runtime.get_profile("smoke")


class Interrupt(Exception):
    """Stands for the session dying (Colab disconnecting) in the middle of training."""


def stop_at(step):
    def callback(history):
        if history.steps[-1] >= step:
            raise Interrupt(f"stopped at step {history.steps[-1]}")

    return callback


@pytest.mark.parametrize(
    "task, factory",
    [("fra-eng", experiments.gru_model), ("fra-eng", experiments.transformer_model)],
)
def test_interrupted_training_resumes_to_identical_weights(
    tmp_path, monkeypatch, fra_eng_dir, task, factory
):
    monkeypatch.setenv("ATTNLAB_DATA_DIR", str(fra_eng_dir))
    data, plan = experiments.fra_eng_data(SMOKE), experiments.budget(task, SMOKE)
    assert (
        plan.steps == 60
        and plan.eval_every == 30
        and len(data.train) // plan.batch_size < 40
    )

    def train(build_dir, **kwargs):
        monkeypatch.setenv("ATTNLAB_BUILD_DIR", str(tmp_path / build_dir))
        return experiments.train_model(
            task,
            lambda: factory(data),
            data,
            plan,
            profile=SMOKE,
            device="cpu",
            **kwargs,
        )

    whole, whole_meta = train("uninterrupted")
    # Stopped at step 40: the resume point of step 30 is on disk, the model is not cached.
    with pytest.raises(Interrupt):
        train("interrupted", callbacks=[stop_at(40)])
    models = tmp_path / "interrupted" / "models"
    (point,) = models.glob("*.resume.pt")
    assert not [p for p in models.glob("*.pt") if p != point]
    saved = resume.load(point)
    assert saved.step == 30 and saved.epoch == 0 and saved.position == 30
    torch.rand(1000), random.random()  # the new session's generators are elsewhere
    resumed, meta = train("interrupted")
    assert not meta["from_cache"] and not point.exists()
    # Steps 31-60 again, crossing into the second pass over the data: every tensor equal.
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    for key in ("steps", "train_loss", "val_steps", "val_loss", "tokens"):
        assert meta["history"][key] == whole_meta["history"][key], key
    # Run again, the cell loads the finished model.
    again, meta = train("interrupted")
    assert meta["from_cache"]


def test_resume_in_a_later_pass_over_the_data(tmp_path):
    """7 batches a pass: the resume point of step 16 is in the third pass, with dropout and a
    warm-up schedule whose states must come back too."""
    task = synthetic.reversal_task(
        n_train=200, n_val=8, n_test=8, min_len=3, max_len=8, seed=0
    )

    def fit(path, callbacks=()):
        runtime.seed_everything(0)
        model = Transformer(
            len(task.src_vocab),
            len(task.tgt_vocab),
            d_model=32,
            num_heads=2,
            num_layers=1,
            d_ff=64,
            dropout=0.2,
        )
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        trainer = Trainer(
            model,
            optimizer=optimizer,
            device="cpu",
            scheduler=warmup_linear_schedule(optimizer, warmup=5, total=30),
        )
        history = trainer.fit(
            task.loader("train", 32, seed=3),
            max_steps=30,
            log_every=5,
            save_every=8,
            resume_path=path,
            callbacks=callbacks,
            progress=False,
        )
        return model, history

    assert len(task.loader("train", 32)) == 7
    whole, history = fit(tmp_path / "a.pt")
    with pytest.raises(Interrupt):
        fit(tmp_path / "b.pt", [stop_at(20)])
    saved = resume.load(tmp_path / "b.pt")
    assert (saved.step, saved.epoch, saved.position) == (16, 2, 2)
    torch.rand(1000)
    resumed, resumed_history = fit(tmp_path / "b.pt")
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed_history.train_loss == history.train_loss
    # The final resume points hold every tensor of both runs: weights, Adam's moments, schedule.
    a, b = resume.load(tmp_path / "a.pt"), resume.load(tmp_path / "b.pt")
    assert_same(a.model, b.model)
    assert_same(a.optimizer, b.optimizer)
    assert a.scheduler == b.scheduler and a.step == b.step == 30


def assert_same(a, b, where="state"):
    """Nested dicts and lists of tensors and plain values, equal to the last bit."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _tiny_trainer():
    runtime.seed_everything(0)
    task = synthetic.reversal_task(
        n_train=64, n_val=8, n_test=8, min_len=3, max_len=6, seed=0
    )
    model = experiments.gru_model(task)
    return Trainer(model, lr=1e-3, device="cpu"), task


def test_resume_points_refuse_what_they_cannot_resume(tmp_path):
    trainer, task = _tiny_trainer()
    path = tmp_path / "run.resume.pt"
    trainer.fit(
        task.loader("train", 32),
        max_steps=4,
        save_every=2,
        resume_path=path,
        progress=False,
    )
    assert resume.load(path).step == 4
    # Finished: running it again trains nothing more.
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    history = trainer.fit(
        task.loader("train", 32), max_steps=4, resume_path=path, progress=False
    )
    assert history.steps[-1] == 4
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    with pytest.raises(resume.ResumeError, match="run of 4 steps, not 6"):
        trainer.fit(
            task.loader("train", 32), max_steps=6, resume_path=path, progress=False
        )
    other = Trainer(experiments.bahdanau_model(task), device="cpu")
    with pytest.raises(
        resume.ResumeError, match="another model than AttentionEncoderDecoder"
    ):
        other.fit(
            task.loader("train", 32), max_steps=4, resume_path=path, progress=False
        )
    with pytest.raises(ValueError, match="cannot resume training on a generator"):
        trainer.fit(
            (b for b in task.loader("train", 32)),
            max_steps=4,
            resume_path=tmp_path / "g.pt",
            progress=False,
        )
    path.write_bytes(b"half a file")
    with pytest.raises(resume.ResumeError, match="not a readable resume point"):
        trainer.fit(
            task.loader("train", 32), max_steps=4, resume_path=path, progress=False
        )


# --- the cache key covers the code that determines the weights ---------------------------------


def test_a_resume_point_of_another_format_or_with_a_field_missing_is_refused(tmp_path):
    trainer, task = _tiny_trainer()
    path = tmp_path / "run.resume.pt"
    trainer.fit(task.loader("train", 32), max_steps=2, resume_path=path, progress=False)
    state = torch.load(path, weights_only=True)
    assert resume.ResumePoint.from_state_dict(state).state_dict().keys() == state.keys()
    torch.save({**state, "format": "attnlab-resume-1"}, path)  # an older schema
    with pytest.raises(resume.ResumeError, match="not an attnlab resume point"):
        resume.load(path)
    torch.save({k: v for k, v in state.items() if k != "rng"}, path)
    with pytest.raises(resume.ResumeError, match="lacks rng"):
        trainer.fit(
            task.loader("train", 32), max_steps=2, resume_path=path, progress=False
        )
