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
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from attnlab.core.files import atomic_path

# 3: every process's generators (``rng`` a list by rank), the gradient scaler, and how
# many processes wrote it
FORMAT = "attnlab-resume-3"


class ResumeError(RuntimeError):
    """A resume point is unreadable or belongs to another run; the message says
    which."""


def rng_states() -> dict:
    """The state of Python's, NumPy's and torch's generators (CPU, and CUDA/MPS if in
    use)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [
            name,
            torch.from_numpy(keys.astype(np.int64)),
            pos,
            has_gauss,
            cached,
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "mps": torch.mps.get_rng_state() if torch.backends.mps.is_available() else None,
    }


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


@dataclass
class ResumePoint:
    """What a resume point holds: the tensors of the model, the optimiser and the
    schedule, where the run was, and every generator's state."""

    model: dict  # the model's state_dict, on the CPU
    optimizer: dict  # the optimiser's state_dict
    scheduler: dict | None  # the schedule's state_dict (None: no schedule)
    max_steps: int  # the length of the run that wrote it
    step: int  # steps done
    epoch: int  # which pass over the data
    position: int  # batches already taken from that pass
    running: float  # training loss summed since the last logged step ...
    count: int  # ... over this many steps
    history: dict  # what the run has measured so far (``History.to_dict()``)
    rng: list  # :func:`rng_states` after the last step, one per process by rank
    scaler: dict | None  # the float16 gradient scaler's state_dict (None: no scaler)
    world_size: int  # how many processes trained together

    def state_dict(self) -> dict:
        """What is written to disk: plain values and tensors, tagged with the format."""
        return {
            "format": FORMAT,
            **{f.name: getattr(self, f.name) for f in fields(self)},
        }

    @classmethod
    def from_state_dict(
        cls, state: object, *, where: str = "the resume point"
    ) -> "ResumePoint":
        """The resume point :meth:`state_dict` wrote; a clear error for anything
        else."""
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ResumeError(
                f"{where} is not an attnlab resume point "
                f"(format {FORMAT}); delete it to train from the start"
            )
        missing = [f.name for f in fields(cls) if f.name not in state]
        if missing:
            raise ResumeError(
                f"{where} lacks {', '.join(missing)}; delete it to train from the start"
            )
        return cls(**{f.name: state[f.name] for f in fields(cls)})

    def refuse(self, reason: str):
        raise ResumeError(
            f"the resume point {reason}; delete it to train from the start"
        )

    def check_fits(
        self,
        model: torch.nn.Module,
        has_scheduler: bool,
        max_steps: int,
        *,
        world_size: int = 1,
        scaler: bool = False,
    ) -> None:
        """Refuse a resume point written by another run: other length, other model,
        schedule or none, other number of processes, gradient scaler or none."""
        own = model.state_dict()
        if self.max_steps != max_steps:
            self.refuse(
                f"was written by a run of {self.max_steps} steps, not {max_steps}"
            )
        if own.keys() != self.model.keys() or any(
            v.shape != self.model[k].shape for k, v in own.items()
        ):
            self.refuse(f"holds another model than {type(model).__name__}")
        if (self.scheduler is None) == has_scheduler:
            self.refuse("and this trainer disagree on having a learning-rate schedule")
        if self.world_size != world_size or len(self.rng) != world_size:
            self.refuse(
                f"was written by {self.world_size} processes training together, "
                f"not {world_size}"
            )
        if (self.scaler is None) == scaler:
            self.refuse(
                "and this trainer disagree on scaling gradients (float16 precision)"
            )


def save(path: str | os.PathLike, point: ResumePoint) -> Path:
    """Write a resume point atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(point.state_dict(), tmp)
    return path


def load(path: str | os.PathLike) -> ResumePoint:
    """Read a resume point written by :func:`save`."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign files raise several types
        raise ResumeError(
            f"{path} is not a readable resume point "
            f"({type(exc).__name__}: {exc}); delete it "
            "to train from the start"
        ) from None
    return ResumePoint.from_state_dict(state, where=str(path))


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
    raise ValueError(
        "cannot resume training "
        f"on a {type(batches).__name__}: its batches cannot be "
        "replayed in the same order; use "
        "Seq2SeqData.loader or a list of batches"
    )
