"""Training on several processes with PyTorch's own engine: ``torch.distributed``,
launched by ``torchrun``.

``torchrun --nproc-per-node N script.py`` starts ``N`` copies of ``script.py`` and tells
each its place in the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).
:func:`start` reads it and joins the group (``gloo`` on a CPU, ``nccl`` on CUDA GPUs); a
script started without ``torchrun`` is one process, and joins nothing. Then
:class:`~attnlab.train.training.Trainer` given the :class:`Ranks` wraps its model in
``DistributedDataParallel`` (which averages the gradients over the processes), each
process reads its share of every batch
(:class:`~attnlab.data.batching.BucketBatchSampler`'s ``rank`` and ``world_size``), and
only rank 0 writes resume points and shows progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """Where this process is among those training together."""

    rank: int = 0  # 0 .. world_size - 1
    world_size: int = 1
    local_rank: int = 0  # its place on its own machine: which GPU it uses

    def __post_init__(self):
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(
                "need 0 <= rank < world_size, got rank "
                f"{self.rank} of {self.world_size}"
            )

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and shows progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1


ONE = Ranks()  # a process on its own


def from_environment(environ=os.environ) -> Ranks:
    """The ranks ``torchrun`` gives this process; :data:`ONE` without ``torchrun``."""
    if "WORLD_SIZE" not in environ:
        return ONE
    try:
        return Ranks(
            rank=int(environ["RANK"]),
            world_size=int(environ["WORLD_SIZE"]),
            local_rank=int(environ.get("LOCAL_RANK", 0)),
        )
    except (KeyError, ValueError) as error:
        raise ValueError(
            "WORLD_SIZE is set but RANK is missing or not a number "
            f"({type(error).__name__}: {error}): start the script with torchrun"
        ) from None


def start(device: torch.device | str | None = None) -> Ranks:
    """Join the group ``torchrun`` set up, over ``gloo`` for a CPU (``device``) or
    ``nccl`` for a GPU, and return this process's :class:`Ranks`; a process started
    without ``torchrun`` joins nothing."""
    ranks = from_environment()
    if ranks.active and not dist.is_initialized():
        cuda = torch.device(device).type == "cuda" if device is not None else False
        if cuda:
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")
    return ranks


def stop(*, wait: bool = True) -> None:
    """Leave the group (at the end of a script started by ``torchrun``), once every
    process is here (``wait``): a process that leaves while the others' last messages
    to it are still on their way can abort them (gloo: "terminate called without an
    active exception"). After a failure, ``wait=False``: the others may never come."""
    if dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def device_for(ranks: Ranks, device: torch.device | str) -> torch.device:
    """The device this process trains on: its own GPU (``cuda:LOCAL_RANK``) where
    ``device`` is a GPU, else ``device``."""
    device = torch.device(device)
    if device.type == "cuda" and ranks.active:
        return torch.device("cuda", ranks.local_rank)
    return device


def all_sum(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """``tensor`` summed over every process, in place (nothing to do for one); on a GPU
    the sum is queued like any kernel, and the host does not wait for it."""
    if ranks.active:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather(value: object, ranks: Ranks) -> list:
    """Every process's ``value``, in rank order, on every process (``[value]`` for
    one)."""
    if not ranks.active:
        return [value]
    values: list = [None] * ranks.world_size
    dist.all_gather_object(values, value)
    return values


def barrier(ranks: Ranks) -> None:
    """Wait until every process is here."""
    if ranks.active:
        dist.barrier()
