"""Sessions die, nothing is lost: resume points, and a model cache keyed by the training code."""

from __future__ import annotations

import random
import shutil

import pytest
import torch

from attnlab import checkpoints, experiments, resume, runtime, synthetic
from attnlab.checkpoints import code_hash
from attnlab.training import Trainer, warmup_linear_schedule
from attnlab.transformer import Transformer

SMOKE = runtime.get_profile("smoke")


class Interrupt(Exception):
    """Stands for the session dying (Colab disconnecting) in the middle of training."""


def stop_at(step):
    def callback(history):
        if history.steps[-1] >= step:
            raise Interrupt(f"stopped at step {history.steps[-1]}")
    return callback


@pytest.mark.parametrize("task, factory", [("fra-eng", experiments.gru_model),
                                           ("fra-eng-transformer", experiments.transformer_model)])
def test_interrupted_training_resumes_to_identical_weights(tmp_path, monkeypatch, fra_eng_dir,
                                                           task, factory):
    monkeypatch.setenv("ATTNLAB_DATA_DIR", str(fra_eng_dir))
    data, plan = experiments.fra_eng_data(SMOKE), experiments.budget(task, SMOKE)
    assert plan.steps == 60 and plan.eval_every == 30 and len(data.train) // plan.batch_size < 40

    def train(build_dir, **kwargs):
        monkeypatch.setenv("ATTNLAB_BUILD_DIR", str(tmp_path / build_dir))
        return experiments.train_model(task, lambda: factory(data), data, plan, profile=SMOKE,
                                       device="cpu", **kwargs)

    whole, whole_meta = train("uninterrupted")
    # Stopped at step 40: the resume point of step 30 is on disk, the model is not cached.
    with pytest.raises(Interrupt):
        train("interrupted", callbacks=[stop_at(40)])
    models = tmp_path / "interrupted" / "models"
    (point,) = models.glob("*.resume.pt")
    assert not [p for p in models.glob("*.pt") if p != point]
    saved = resume.load(point)
    assert saved["step"] == 30 and saved["epoch"] == 0 and saved["position"] == 30
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
    task = synthetic.reversal_task(n_train=200, n_val=8, n_test=8, min_len=3, max_len=8, seed=0)

    def fit(path, callbacks=()):
        runtime.seed_everything(0)
        model = Transformer(len(task.src_vocab), len(task.tgt_vocab), d_model=32, num_heads=2,
                            num_layers=1, d_ff=64, dropout=0.2)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        trainer = Trainer(model, optimizer=optimizer, device="cpu",
                          scheduler=warmup_linear_schedule(optimizer, warmup=5, total=30))
        history = trainer.fit(task.loader("train", 32, seed=3), max_steps=30, log_every=5,
                              save_every=8, resume_path=path, callbacks=callbacks, progress=False)
        return model, history

    assert len(task.loader("train", 32)) == 7
    whole, history = fit(tmp_path / "a.pt")
    with pytest.raises(Interrupt):
        fit(tmp_path / "b.pt", [stop_at(20)])
    saved = resume.load(tmp_path / "b.pt")
    assert (saved["step"], saved["epoch"], saved["position"]) == (16, 2, 2)
    torch.rand(1000)
    resumed, resumed_history = fit(tmp_path / "b.pt")
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed_history.train_loss == history.train_loss
    # The final resume points hold every tensor of both runs: weights, Adam's moments, schedule.
    a, b = resume.load(tmp_path / "a.pt"), resume.load(tmp_path / "b.pt")
    assert_same(a["model"], b["model"])
    assert_same(a["optimizer"], b["optimizer"])
    assert a["scheduler"] == b["scheduler"] and a["step"] == b["step"] == 30


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
    task = synthetic.reversal_task(n_train=64, n_val=8, n_test=8, min_len=3, max_len=6, seed=0)
    model = experiments.gru_model(task)
    return Trainer(model, lr=1e-3, device="cpu"), task


def test_resume_points_refuse_what_they_cannot_resume(tmp_path):
    trainer, task = _tiny_trainer()
    path = tmp_path / "run.resume.pt"
    trainer.fit(task.loader("train", 32), max_steps=4, save_every=2, resume_path=path,
                progress=False)
    assert resume.load(path)["step"] == 4
    # Finished: running it again trains nothing more.
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    history = trainer.fit(task.loader("train", 32), max_steps=4, resume_path=path, progress=False)
    assert history.steps[-1] == 4
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    with pytest.raises(resume.ResumeError, match="run of 4 steps, not 6"):
        trainer.fit(task.loader("train", 32), max_steps=6, resume_path=path, progress=False)
    other = Trainer(experiments.bahdanau_model(task), device="cpu")
    with pytest.raises(resume.ResumeError, match="another model than AttentionEncoderDecoder"):
        other.fit(task.loader("train", 32), max_steps=4, resume_path=path, progress=False)
    with pytest.raises(ValueError, match="cannot resume training on a generator"):
        trainer.fit((b for b in task.loader("train", 32)), max_steps=4,
                    resume_path=tmp_path / "g.pt", progress=False)
    path.write_bytes(b"half a file")
    with pytest.raises(resume.ResumeError, match="not a readable resume point"):
        trainer.fit(task.loader("train", 32), max_steps=4, resume_path=path, progress=False)


# --- the cache key covers the code that determines the weights ---------------------------------

def test_every_module_is_classified():
    package = {p.stem for p in (checkpoints.Path(checkpoints.__file__).parent).glob("*.py")}
    training, other = set(checkpoints.TRAINING_CODE), set(checkpoints.OTHER_CODE)
    assert not training & other
    assert training | other == package, f"place these modules: {package - training - other}"


def _edited_copy(tmp_path, module, old, new):
    folder = tmp_path / "attnlab"
    shutil.copytree(checkpoints.Path(checkpoints.__file__).parent, folder,
                    ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / f"{module}.py"
    source = path.read_text()
    assert old in source
    path.write_text(source.replace(old, new, 1))
    return folder


@pytest.mark.parametrize("module, old, new, retrains", [
    # Code that trains: a changed clipping threshold, a changed model, a changed batch order.
    ("training", "clip: float | None = 1.0", "clip: float | None = 5.0", True),
    ("rnn", "batch_first=True", "batch_first=True, bias=True", True),
    ("batching", "bucket_factor: int = 50", "bucket_factor: int = 40", True),
    # Documentation and comments of that code, and presentation code: no retraining.
    ("training", '"""One optimisation step on ``batch``; returns its loss."""', '"""One step."""', False),
    ("training", "# loss summed since the last logged step", "# (a comment edited)", False),
    ("plots", 'ax.grid(alpha=0.3)', 'ax.grid(alpha=0.5)', False),
    ("explorer", "TEMPERATURES = (0.25, 0.5, 1.0, 2.0, 4.0)", "TEMPERATURES = (0.5, 1.0, 2.0)", False),
    ("decoding", "def ", "def _unused():\n    return 1\n\n\ndef ", False),
])
def test_code_hash_follows_training_code_only(tmp_path, module, old, new, retrains):
    original = code_hash(checkpoints.Path(checkpoints.__file__).parent)
    edited = code_hash(_edited_copy(tmp_path, module, old, new))
    assert (edited != original) == retrains


def test_model_cache_retrains_when_the_training_code_changes(tmp_path, monkeypatch):
    task = synthetic.reversal_task(n_train=64, n_val=8, n_test=8, min_len=3, max_len=6, seed=0)
    calls = []

    def train(model, resume_path):
        calls.append(resume_path)
        Trainer(model, device="cpu").fit(task.loader("train", 32), max_steps=2, progress=False,
                                         resume_path=resume_path)
        return {}

    def cached():
        return checkpoints.train_or_load("tiny", {"steps": 2}, build=lambda: experiments.gru_model(task),
                                         train=train)[1]["from_cache"]

    assert [cached(), cached()] == [False, True]
    monkeypatch.setattr(checkpoints, "code_hash", lambda: "edited-training-code")
    assert [cached(), cached()] == [False, True]
    assert len(calls) == 2 and not any(p.exists() for p in calls)
