"""Shared fixtures: the real corpus, and an isolated build/cache folder for every test."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from attnlab.vocab import Vocab

ROOT = Path(__file__).resolve().parents[1]


# The folder holding fra-eng.zip: ATTNLAB_DATA_DIR as the tests start, else ../shared/data.
DATA_DIR = Path(os.environ.get("ATTNLAB_DATA_DIR") or ROOT.parent / "shared" / "data")


def chromium_path() -> Path:
    """The Chromium the browser tests (and benchmarks/bench_browser.py) drive:
    ``ATTNLAB_CHROMIUM``, else ``chromium`` or ``chromium-browser`` on the PATH, else
    Debian's ``/usr/bin/chromium``."""
    env = os.environ.get("ATTNLAB_CHROMIUM")
    if env:
        return Path(env).expanduser()
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return Path(found) if found else Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def fra_eng_dir() -> Path:
    folder = DATA_DIR
    if not (folder / "fra-eng.zip").is_file():
        pytest.fail(f"the tests need the real corpus: put fra-eng.zip in {folder} or set "
                    "ATTNLAB_DATA_DIR to its folder")
    return folder


@pytest.fixture(autouse=True)
def isolated_folders(tmp_path, monkeypatch):
    """Results, models and downloads of a test go to its own temporary folders, and the
    corpus is found only where a test says (so the download path is really exercised)."""
    monkeypatch.delenv("ATTNLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("ATTNLAB_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("ATTNLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ATTNLAB_DEVICE", raising=False)
    monkeypatch.delenv("ATTNLAB_PROFILE", raising=False)


@pytest.fixture(scope="session")
def d2l():
    """d2l's PyTorch module, the course's reference implementation (see reference/)."""
    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    try:
        from d2l import torch as d2l_torch
    finally:
        sys.path.remove(str(ROOT / "tests" / "reference"))
    return d2l_torch


# A toy translation task for the inspection and explorer tests.
TOY_SRC_SENTENCES = [["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "."]]
TOY_TGT_SENTENCES = [["le", "chat", "est", "assis", "sur", "un", "tapis", "chien", "a", "couru", "."]]


TOY_SRC, TOY_TGT = Vocab(TOY_SRC_SENTENCES), Vocab(TOY_TGT_SENTENCES)


@pytest.fixture
def toy_transformer():
    """A small untrained Transformer on the toy vocabularies that never writes <pad> or <bos>,
    so its output reads back as written."""
    import torch

    from attnlab import runtime
    from attnlab.transformer import Transformer

    runtime.seed_everything(0)
    transformer = Transformer(len(TOY_SRC), len(TOY_TGT), d_model=16, num_heads=2, num_layers=3,
                              d_ff=32, dropout=0.0, max_len=40).eval()
    with torch.no_grad():
        transformer.out.bias[: TOY_TGT.eos_id] = -1e4
    return transformer


def overfit_one_batch(build, *, lr: float, steps: int, max_len: int = 8) -> list[float]:
    """Train ``build(src_vocab_size, tgt_vocab_size)`` on one batch of 32 reversal strings
    and return the losses: a model that can learn anything should drive them to ~0."""
    from attnlab import runtime, synthetic
    from attnlab.training import Trainer

    task = synthetic.reversal_task(n_train=32, n_val=4, n_test=4, min_len=3, max_len=max_len, seed=0)
    runtime.seed_everything(0)
    model = build(len(task.src_vocab), len(task.tgt_vocab))
    batch = next(iter(task.loader("train", 32)))
    trainer = Trainer(model, lr=lr, device="cpu")
    return [trainer.train_step(batch) for _ in range(steps)]


def decode_stepwise(model, src, src_len, tgt_in):
    """Run a model's ``decode_step`` over ``tgt_in`` one token at a time, as generation does.

    Returns the logits (B, T, V), the per-step attention weights stacked to
    (B, T, S) (or ``None`` for a model without attention) and the final state.
    """
    import torch

    memory, state, logits, weights = model.encode(src, src_len), None, [], []
    for t in range(tgt_in.shape[1]):
        step = model.decode_step(tgt_in[:, t], memory, state)
        state = step.state
        logits.append(step.logits)
        weights.append(step.attention)
    stacked = torch.stack(weights, 1) if weights[0] is not None else None
    return torch.stack(logits, 1), stacked, state


def assert_transformer_weights(model, src_vocab, tgt_vocab, source, weights, atol=1e-4):
    """An exported Transformer's weights of a greedy decode (``weights``: "encoder",
    "decoder_self" and "cross" arrays, one row per step) against every layer and head of
    PyTorch's pass over the same final prefix."""
    import numpy as np
    import torch

    from attnlab import decoding

    ids = src_vocab.encode(source) + [src_vocab.eos_id]
    steps = np.asarray(weights["cross"]).shape[2]
    written = decoding.greedy_decode(
        model, torch.tensor([ids]), torch.tensor([len(ids)]), bos_id=tgt_vocab.bos_id,
        eos_id=tgt_vocab.eos_id, max_len=steps).tokens[0].tolist()
    prefix = [tgt_vocab.bos_id] + written[:steps - 1]
    with torch.no_grad():
        out = model(src=torch.tensor([ids]), src_len=torch.tensor([len(ids)]),
                    tgt_in=torch.tensor([prefix]), need_weights=True)
    for key, layers in (("encoder", out.layers.encoder),
                        ("decoder_self", out.layers.decoder_self), ("cross", out.layers.cross)):
        np.testing.assert_allclose(np.asarray(weights[key], dtype=np.float32),
                                   torch.cat(layers).numpy(), atol=atol)
