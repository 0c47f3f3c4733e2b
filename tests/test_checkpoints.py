"""Checkpoints, the model cache, and a cache key that covers the training code."""

from __future__ import annotations

import pytest
import torch
from helpers import LIBRARY, TinySeq2Seq, edited_library_copy, tiny_task, train_tiny

from attnlab.data import synthetic
from attnlab.recipes import experiments
from attnlab.train import checkpoints
from attnlab.train.checkpoints import CheckpointError, code_hash
from attnlab.train.training import Trainer


def test_checkpoint_round_trip(tmp_path):
    task = tiny_task()
    model, _ = train_tiny(task, steps=5)
    path = checkpoints.save_checkpoint(
        tmp_path / "m.pt",
        model,
        vocabs={"src": task.src_vocab, "tgt": task.tgt_vocab},
        meta={"steps": 5, "loss": torch.tensor(1.5)},
    )
    loaded = checkpoints.load_checkpoint(path)
    assert isinstance(loaded.model, TinySeq2Seq)
    for a, b in zip(model.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(a, b)
    assert loaded.vocabs["tgt"] == task.tgt_vocab and loaded.meta == {
        "steps": 5,
        "loss": 1.5,
    }
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left


def test_checkpoint_mismatch_and_corruption_errors(tmp_path):
    task = tiny_task()
    model, _ = train_tiny(task, steps=2)
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", model)
    other = TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab), hidden=16)
    with pytest.raises(CheckpointError, match="config"):
        checkpoints.load_checkpoint(path, model=other)
    with pytest.raises(
        CheckpointError,
        match="shape mismatch: gru.bias_hh_l0: model \\(48,\\) vs checkpoint \\(96,\\)",
    ):
        checkpoints.load_weights(other, model.state_dict())
    with pytest.raises(CheckpointError, match="missing from checkpoint: out.bias"):
        state = model.state_dict()
        del state["out.bias"]
        checkpoints.load_weights(model, state, origin="checkpoint")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        checkpoints.load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoints.load_checkpoint(tmp_path / "absent.pt")


def test_a_config_key_the_model_does_not_take_says_what_to_do(tmp_path):
    task = tiny_task()
    model, _ = train_tiny(task, steps=2)
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", model)
    state = torch.load(path, weights_only=True)
    state["config"]["hiden"] = 32
    torch.save(state, path)
    with pytest.raises(
        CheckpointError,
        match="'hiden', which TinySeq2Seq does not take.*delete it and train again",
    ):
        checkpoints.load_checkpoint(path)
    state["config"] = ["not", "a", "dict"]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="config is not a dict"):
        checkpoints.load_checkpoint(path)


def test_interrupted_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    task = tiny_task()
    model, _ = train_tiny(task, steps=2)
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", model)
    good = path.read_bytes()

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_checkpoint(path, model)
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == [
        "m.pt"
    ]


def test_model_cache_reuses_and_retrains_identically(tmp_path):
    task = tiny_task()
    calls = []

    def build():
        return TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab))

    def train(model, resume_path):
        calls.append(1)
        history = Trainer(model, lr=3e-3, device="cpu").fit(
            task.loader("train", 64), max_steps=10, progress=False
        )
        return {"history": history.to_dict()}

    spec = {"hidden": 32, "steps": 10}
    vocabs = {"src": task.src_vocab, "tgt": task.tgt_vocab}
    first, meta = checkpoints.train_or_load(
        "tiny", spec, build=build, train=train, vocabs=vocabs
    )
    second, meta2 = checkpoints.train_or_load(
        "tiny", spec, build=build, train=train, vocabs=vocabs
    )
    assert len(calls) == 1 and not meta["from_cache"] and meta2["from_cache"]
    assert meta2["history"] == meta["history"]
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    # An empty cache retrains to the very same weights.
    retrained, _ = checkpoints.train_or_load(
        "tiny", spec, build=build, train=train, vocabs=vocabs, folder=tmp_path / "empty"
    )
    assert len(calls) == 2
    for a, b in zip(first.state_dict().values(), retrained.state_dict().values()):
        assert torch.equal(a, b)
    # Another spec is another cache entry.
    checkpoints.train_or_load(
        "tiny", {**spec, "steps": 11}, build=build, train=train, vocabs=vocabs
    )
    assert len(calls) == 3
    wrong = {"src": task.tgt_vocab, "tgt": task.tgt_vocab}
    with pytest.raises(CheckpointError, match="other vocabularies"):
        checkpoints.train_or_load("tiny", spec, build=build, train=train, vocabs=wrong)


@pytest.mark.parametrize(
    "module, old, new, retrains",
    [
        # Code that trains, in each keyed subpackage: a changed clipping threshold, a changed
        # model, a changed batch order, a changed layer, a changed seed, a changed budget.
        ("training", "clip: float | None = 1.0", "clip: float | None = 5.0", True),
        ("rnn", "batch_first=True", "batch_first=True, bias=True", True),
        ("batching", "bucket_factor: int = 50", "bucket_factor: int = 40", True),
        ("layers", "\ndef ", "\ndef _unused():\n    return 1\n\n\ndef ", True),
        ("runtime", "\ndef ", "\ndef _unused():\n    return 1\n\n\ndef ", True),
        ("experiments", "\ndef ", "\ndef _unused():\n    return 1\n\n\ndef ", True),
        # Documentation and comments of that code, and other code: no retraining.
        (
            "training",
            '""":meth:`step`, then wait for its loss and check it is finite."""',
            '"""One step."""',
            False,
        ),
        (
            "training",
            "# loss summed since the last logged step",
            "# (a comment edited)",
            False,
        ),
        ("plots", "ax.grid(alpha=0.3)", "ax.grid(alpha=0.5)", False),
        (
            "explorer",
            "TEMPERATURES = (0.25, 0.5, 1.0, 2.0, 4.0)",
            "TEMPERATURES = (0.5, 1.0, 2.0)",
            False,
        ),
        ("decoding", "\ndef ", "\ndef _unused():\n    return 1\n\n\ndef ", False),
        ("metrics", "\ndef ", "\ndef _unused():\n    return 1\n\n\ndef ", False),
        ("compare", "\ndef ", "\ndef _unused():\n    return 1\n\n\ndef ", False),
        ("export", "\ndef ", "\ndef _unused():\n    return 1\n\n\ndef ", False),
    ],
)
def test_code_hash_follows_training_code_only(tmp_path, module, old, new, retrains):
    original = code_hash(LIBRARY)
    edited = code_hash(edited_library_copy(tmp_path, module, old, new))
    assert (edited != original) == retrains


@pytest.mark.parametrize(
    "package",
    sorted(p.name for p in LIBRARY.iterdir() if (p / "__init__.py").is_file()),
)
def test_a_new_module_retrains_exactly_in_the_keyed_subpackages(tmp_path, package):
    """No list of modules decides the key: a module added to a subpackage is in it or not
    by where it lies."""
    folder = edited_library_copy(
        tmp_path, "training", "def ", "def "
    )  # an unedited copy
    original = code_hash.__wrapped__(folder)  # uncached: the same folder, changed
    (folder / package / "added.py").write_text("STEPS = 3\n")
    changed = code_hash.__wrapped__(folder) != original
    assert changed == (package in checkpoints.TRAINING_CODE)


def test_model_cache_retrains_when_the_training_code_changes(tmp_path, monkeypatch):
    task = synthetic.reversal_task(
        n_train=64, n_val=8, n_test=8, min_len=3, max_len=6, seed=0
    )
    calls = []

    def train(model, resume_path):
        calls.append(resume_path)
        Trainer(model, device="cpu").fit(
            task.loader("train", 32),
            max_steps=2,
            progress=False,
            resume_path=resume_path,
        )
        return {}

    def cached():
        return checkpoints.train_or_load(
            "tiny", {"steps": 2}, build=lambda: experiments.gru_model(task), train=train
        )[1]["from_cache"]

    assert [cached(), cached()] == [False, True]
    monkeypatch.setattr(checkpoints, "code_hash", lambda: "edited-training-code")
    assert [cached(), cached()] == [False, True]
    assert len(calls) == 2 and not any(p.exists() for p in calls)


SHARED_ENTRY = """
import json, os, sys, time
from pathlib import Path
from attnlab.train import checkpoints
from attnlab.train.training import Trainer
from helpers import TinySeq2Seq, tiny_task

folder, log = Path(sys.argv[1]), Path(sys.argv[2])
task = tiny_task()

def train(model, resume_path):
    with log.open("a") as f:
        f.write("start\\n")
    time.sleep(2)          # long enough for the second process to arrive and wait
    history = Trainer(model, lr=3e-3, device="cpu").fit(
        task.loader("train", 64), max_steps=3, progress=False, resume_path=resume_path)
    with log.open("a") as f:
        f.write("end\\n")
    return {"history": history.to_dict()}

model, meta = checkpoints.train_or_load(
    "shared", {"steps": 3}, folder=folder, train=train,
    build=lambda: TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab)))
print(json.dumps({"from_cache": meta["from_cache"],
                  "sum": float(sum(p.sum() for p in model.state_dict().values()))}))
"""


def test_two_processes_on_one_cache_entry_train_once(tmp_path):
    """The first process trains; the second, arriving while it does, waits for the entry's
    lock and loads the model the first saved, instead of training it again and deleting
    the first one's resume point."""
    import json
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = tmp_path / "entry.py"
    script.write_text(SHARED_ENTRY)
    log = tmp_path / "log.txt"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])
        ),
    }
    args = [sys.executable, str(script), str(tmp_path / "models"), str(log)]
    first = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not (log.exists() and "start" in log.read_text()):
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first process never started training"
        time.sleep(0.05)
    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, err + second.stderr
    a, b = json.loads(out.splitlines()[-1]), json.loads(second.stdout.splitlines()[-1])
    assert (a["from_cache"], b["from_cache"]) == (False, True)
    assert a["sum"] == b["sum"]
    assert "another process is training this model" in second.stdout
    assert log.read_text().split() == ["start", "end"]  # trained once
    assert not list((tmp_path / "models").glob("*.resume.pt"))


def test_a_second_holder_waits_for_the_first_and_then_gets_the_lock(tmp_path):
    import threading

    from attnlab.core.files import exclusive

    events, got = [], threading.Event()

    def second():
        with exclusive(tmp_path / "entry.pt", waiting="waiting") as waited:
            events.append(("second", waited))
            got.set()

    with exclusive(tmp_path / "entry.pt") as waited:
        events.append(("first", waited))
        thread = threading.Thread(target=second)
        thread.start()
        assert not got.wait(0.5), (
            "the second holder got the lock while the first held it"
        )
        events.append(("first done", None))
    assert got.wait(10), "the lock was not released"
    thread.join()
    assert events == [("first", False), ("first done", None), ("second", True)]
