"""Resume points: everything a training run needs to go on exactly where it stopped.

A notebook session can die mid-training (Colab disconnects long or idle
sessions). A resume point holds the model, the optimiser and the scheduler, the
step, the history so far, where the run was in its data, and the state of every
random number generator, so that a resumed run ends with the same weights, bit
for bit, as one never interrupted. It is written atomically and read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from .files import atomic_path

FORMAT = "attnlab-resume-1"


class ResumeError(RuntimeError):
    """A resume point is unreadable or belongs to another run; the message says
    which."""


def rng_states() -> dict:
    """The state of Python's, NumPy's and torch's generators (CPU, and CUDA/MPS if in
    use)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                   cached],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized()
            else [],
            "mps": torch.mps.get_rng_state() if torch.backends.mps.is_available()
            else None,}


def set_rng_states(states: dict) -> None:
    """Put back what :func:`rng_states` returned."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])
    if states["mps"] is not None and torch.backends.mps.is_available():
        torch.mps.set_rng_state(states["mps"])


def save(path: str | os.PathLike, state: dict) -> Path:
    """Write a resume point (a dict of tensors and plain values) atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    return path


def load(path: str | os.PathLike) -> dict:
    """Read a resume point written by :func:`save`."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign files raise several types
        raise ResumeError(f"{path} is not a readable resume point "
                          f"({type(exc).__name__}: {exc}); delete it "
                          "to train from the start") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ResumeError(f"{path} is not an attnlab resume point "
                          f"(format {FORMAT}); delete it to train "
                          "from the start")
    return state


def batch_order(batches) -> object | None:
    """The sampler whose ``epoch`` fixes the order of ``batches`` (None for a list of
    batches).

    A run can only resume if its batches come again in the same order: a list,
    or a loader whose batch sampler counts epochs (``Seq2SeqData.loader``).
    """
    sampler = getattr(batches, "batch_sampler", None)
    if sampler is not None and hasattr(sampler, "epoch"):
        return sampler
    if isinstance(batches, (list, tuple)):
        return None
    raise ValueError("cannot resume training "
                     f"on a {type(batches).__name__}: its batches cannot be "
                     "replayed in the same order; use "
                     "Seq2SeqData.loader or a list of batches")
