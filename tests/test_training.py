"""Training, checkpoints, the model cache, metrics, results and the runtime helpers."""

from __future__ import annotations

import json

import pytest
import sacrebleu
import torch
from torch import nn

from attnlab import checkpoints, metrics, results, runtime, synthetic
from attnlab.checkpoints import CheckpointError
from attnlab.training import Trainer, masked_cross_entropy


@checkpoints.register
class TinySeq2Seq(nn.Module):
    """A minimal model for exercising the trainer: mean-pooled source, GRU decoder."""

    def __init__(self, src_vocab: int, tgt_vocab: int, hidden: int = 32):
        super().__init__()
        self.config = {"src_vocab": src_vocab, "tgt_vocab": tgt_vocab, "hidden": hidden}
        self.src_embed = nn.Embedding(src_vocab, hidden, padding_idx=0)
        self.tgt_embed = nn.Embedding(tgt_vocab, hidden, padding_idx=0)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, tgt_vocab)

    def forward(self, *, src, src_len, tgt_in):
        mask = (torch.arange(src.shape[1])[None] < src_len[:, None]).float()
        context = (self.src_embed(src) * mask[..., None]).sum(1) / src_len[:, None]
        states, _ = self.gru(self.tgt_embed(tgt_in), context[None].contiguous())
        return self.out(states)


def _task():
    return synthetic.dates_task(n_train=512, n_val=64, n_test=64, seed=0)


def _train(task, steps=30, seed=0):
    runtime.seed_everything(seed)
    model = TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab))
    trainer = Trainer(model, lr=3e-3, device="cpu")
    history = trainer.fit(task.loader("train", 64, seed=seed), max_steps=steps, log_every=5,
                          val_batches=task.loader("val", 64), eval_every=15, progress=False)
    return model, history


def test_masked_cross_entropy_ignores_padding():
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, 2, 0], [3, 0, 0]])
    expected = torch.stack([nn.functional.cross_entropy(logits[b, t], targets[b, t])
                            for b, t in [(0, 0), (0, 1), (1, 0)]]).mean()
    assert torch.allclose(masked_cross_entropy(logits, targets), expected)
    changed = logits.clone()
    changed[0, 2] += 100.0  # a padded position: the loss must not move
    assert torch.allclose(masked_cross_entropy(changed, targets), expected)
    with pytest.raises(ValueError, match="do not match"):
        masked_cross_entropy(logits, targets[:, :2])


def test_training_lowers_the_loss_and_logs():
    _, history = _train(_task(), steps=60)
    assert history.steps == list(range(5, 61, 5))
    assert history.val_steps == [15, 30, 45, 60]
    assert history.train_loss[-1] < 0.7 * history.train_loss[0]
    assert history.tokens > 0 and history.seconds > 0


def test_same_seed_same_losses():
    task = _task()
    _, first = _train(task, seed=5)
    _, second = _train(task, seed=5)
    _, other = _train(task, seed=6)
    assert first.train_loss == second.train_loss and first.val_loss == second.val_loss
    assert first.train_loss != other.train_loss


def test_gradient_clipping_bounds_the_update():
    task = _task()
    model = TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    Trainer(model, optimizer=optimizer, clip=0.01, device="cpu").train_step(
        next(iter(task.loader("train", 64))))
    step = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
    assert step.norm() <= 0.01 + 1e-5


def test_checkpoint_round_trip(tmp_path):
    task = _task()
    model, _ = _train(task, steps=5)
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", model,
                                       vocabs={"src": task.src_vocab, "tgt": task.tgt_vocab},
                                       meta={"steps": 5, "loss": torch.tensor(1.5)})
    loaded = checkpoints.load_checkpoint(path)
    assert isinstance(loaded.model, TinySeq2Seq)
    for a, b in zip(model.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(a, b)
    assert loaded.vocabs["tgt"] == task.tgt_vocab and loaded.meta == {"steps": 5, "loss": 1.5}
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left


def test_checkpoint_mismatch_and_corruption_errors(tmp_path):
    task = _task()
    model, _ = _train(task, steps=2)
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", model)
    other = TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab), hidden=16)
    with pytest.raises(CheckpointError, match="config"):
        checkpoints.load_checkpoint(path, model=other)
    with pytest.raises(CheckpointError, match="shape mismatch: gru.bias_hh_l0: model \\(48,\\) vs checkpoint \\(96,\\)"):
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


def test_interrupted_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    task = _task()
    model, _ = _train(task, steps=2)
    path = checkpoints.save_checkpoint(tmp_path / "m.pt", model)
    good = path.read_bytes()

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_checkpoint(path, model)
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_model_cache_reuses_and_retrains_identically(tmp_path):
    task = _task()
    calls = []

    def build():
        return TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab))

    def train(model, resume_path):
        calls.append(1)
        history = Trainer(model, lr=3e-3, device="cpu").fit(
            task.loader("train", 64), max_steps=10, progress=False)
        return {"history": history.to_dict()}

    spec = {"hidden": 32, "steps": 10}
    vocabs = {"src": task.src_vocab, "tgt": task.tgt_vocab}
    first, meta = checkpoints.train_or_load("tiny", spec, build=build, train=train, vocabs=vocabs)
    second, meta2 = checkpoints.train_or_load("tiny", spec, build=build, train=train, vocabs=vocabs)
    assert len(calls) == 1 and not meta["from_cache"] and meta2["from_cache"]
    assert meta2["history"] == meta["history"]
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    # An empty cache retrains to the very same weights.
    retrained, _ = checkpoints.train_or_load("tiny", spec, build=build, train=train,
                                              vocabs=vocabs, folder=tmp_path / "empty")
    assert len(calls) == 2
    for a, b in zip(first.state_dict().values(), retrained.state_dict().values()):
        assert torch.equal(a, b)
    # Another spec is another cache entry.
    checkpoints.train_or_load("tiny", {**spec, "steps": 11}, build=build, train=train, vocabs=vocabs)
    assert len(calls) == 3
    wrong = {"src": task.tgt_vocab, "tgt": task.tgt_vocab}
    with pytest.raises(CheckpointError, match="other vocabularies"):
        checkpoints.train_or_load("tiny", spec, build=build, train=train, vocabs=wrong)


# --- metrics -----------------------------------------------------------------------------

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


# --- results and runtime ---------------------------------------------------------------------

def test_results_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNLAB_PROFILE", "smoke")
    path = results.record_results("01_test", {"bleu": torch.tensor(12.5), "sizes": [1, 2]})
    assert path.parent == tmp_path / "build" / "results"
    record = results.load_results("01_test")
    assert record["results"] == {"bleu": 12.5, "sizes": [1, 2]}
    assert record["profile"] == "smoke" and record["torch"] == torch.__version__
    assert json.loads(path.read_text())["chapter"] == "01_test"
    assert results.available_results() == ["01_test"]
    with pytest.raises(FileNotFoundError, match="run that chapter first"):
        results.load_results("99_missing")
    with pytest.raises(ValueError):
        results.record_results("../escape", {})
    with pytest.raises(TypeError, match="cannot record"):
        results.record_results("01_test", {"bad": object()})
    assert results.load_results("01_test")["results"]["bleu"] == 12.5  # left intact


def test_profiles(monkeypatch):
    assert runtime.get_profile().name == "full"
    monkeypatch.setenv("ATTNLAB_PROFILE", "smoke")
    profile = runtime.get_profile()
    assert profile.is_smoke and profile.pick(smoke=1, full=2) == 1
    monkeypatch.setenv("ATTNLAB_PROFILE", "fast")
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        runtime.get_profile()


def test_device_choice(monkeypatch):
    assert runtime.choose_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert runtime.choose_device().type == expected
    monkeypatch.setenv("ATTNLAB_DEVICE", "cpu")
    assert runtime.choose_device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            runtime.choose_device("cuda")


def test_live_loss_plot_updates_one_figure_in_a_notebook(tmp_path):
    """Run in a kernel, the loss curve is one displayed figure redrawn in place, and the
    executed notebook keeps it (that is what the built page shows), beside a progress bar."""
    import nbformat
    from nbclient import NotebookClient

    from conftest import ROOT

    code = f"""
import sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from test_training import TinySeq2Seq, _task
from attnlab.notebook import setup
from attnlab.plots import LiveLossPlot
from attnlab.training import Trainer
run = setup(seed=0)
task = _task()
plot = LiveLossPlot(interval=0.0)
history = Trainer(TinySeq2Seq(len(task.src_vocab), len(task.tgt_vocab)), device="cpu").fit(
    task.loader("train", 64), max_steps=20, log_every=5, callbacks=[plot])
print("draws", plot.draws, "points", len(history.steps))
"""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = notebook.cells[0].outputs
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    bars = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert len(images) == 1 and len(bars) == 1
    assert "draws 5 points 4" in text  # 4 logged points + the final redraw, all in one figure
