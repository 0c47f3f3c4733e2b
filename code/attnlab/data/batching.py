"""From token sequences to padded tensors: batches, masks and length buckets.

Shapes: B batch, S source length, T target length (both with padding).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from attnlab.data.vocab import Vocab
from attnlab.nn.masks import length_mask


@dataclass
class Batch:
    """One padded batch for teacher forcing.

    Shapes:
        src: (B, S) source ids, each sentence followed by ``<eos>``, then ``<pad>``.
        src_len: (B,) true source lengths (``<eos>`` included).
        tgt_in: (B, T) decoder inputs: ``<bos>`` then the target, padded.
        tgt_out: (B, T) what the decoder must predict: the target then ``<eos>``,
            padded.
        tgt_len: (B,) true target lengths (``<eos>`` included).
    """

    src: torch.Tensor
    src_len: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    tgt_len: torch.Tensor

    @property
    def src_mask(self) -> torch.Tensor:
        """(B, S) bool, True where a source position holds a real token (may be attended
        to)."""
        return length_mask(self.src_len, self.src.shape[1])

    @property
    def tgt_mask(self) -> torch.Tensor:
        """(B, T) bool, True where a target position counts in the loss."""
        return length_mask(self.tgt_len, self.tgt_out.shape[1])

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> "Batch":
        """The batch on ``device``. With ``non_blocking`` and a batch in pinned memory
        (:meth:`pin_memory`), a copy to a GPU is queued and the host does not wait."""
        return Batch(
            *(
                getattr(self, name).to(device, non_blocking=non_blocking)
                for name in _FIELDS
            )
        )

    def pin_memory(self) -> "Batch":
        """The batch in page-locked host memory, which a GPU copies from
        asynchronously; a DataLoader with ``pin_memory=True`` calls this."""
        return Batch(*(getattr(self, name).pin_memory() for name in _FIELDS))

    def __len__(self) -> int:
        return self.src.shape[0]


_FIELDS = ("src", "src_len", "tgt_in", "tgt_out", "tgt_len")


def random_batch(
    src_vocab: int,
    tgt_vocab: int,
    length: int,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Batch:
    """A batch of random ids (no reserved tokens, no padding), ``length`` tokens on each
    side: for timing and counting, where the content does not matter."""
    src = torch.randint(4, src_vocab, (batch_size, length), generator=generator)
    tgt = torch.randint(4, tgt_vocab, (batch_size, length + 1), generator=generator)
    lengths = torch.full((batch_size,), length)
    return Batch(src, lengths, tgt[:, :-1], tgt[:, 1:], lengths.clone()).to(device)


def pad(sequences: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """Right-pad integer sequences into one (B, longest) tensor."""
    longest = max(len(s) for s in sequences)
    # One tensor from nested lists: a copy per row would cost more than the batch's
    # training step on a GPU.
    return torch.tensor(
        [[*map(int, seq), *[pad_id] * (longest - len(seq))] for seq in sequences],
        dtype=torch.long,
    )


class PairDataset(Dataset):
    """Token pairs encoded once with their vocabularies; items are id lists with
    ``<eos>``."""

    def __init__(
        self,
        pairs: Sequence[tuple[Sequence[str], Sequence[str]]],
        src_vocab: Vocab,
        tgt_vocab: Vocab,
    ):
        self.src = [src_vocab.encode(s) + [src_vocab.eos_id] for s, _ in pairs]
        self.tgt = [tgt_vocab.encode(t) + [tgt_vocab.eos_id] for _, t in pairs]
        self.bos_id = tgt_vocab.bos_id
        self.pad_id = tgt_vocab.pad_id

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> tuple[list[int], list[int]]:
        return self.src[i], self.tgt[i]

    def collate(self, items: list[tuple[list[int], list[int]]]) -> Batch:
        src = [s for s, _ in items]
        tgt = [t for _, t in items]
        return Batch(
            src=pad(src, self.pad_id),
            src_len=torch.tensor([len(s) for s in src]),
            tgt_in=pad([[self.bos_id, *t[:-1]] for t in tgt], self.pad_id),
            tgt_out=pad(tgt, self.pad_id),
            tgt_len=torch.tensor([len(t) for t in tgt]),
        )


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of sentences of similar length, so little of each batch is padding.

    Each epoch shuffles the data, sorts it by length within windows of
    ``bucket_factor`` batches, cuts the windows into batches and shuffles the
    batches. The order depends only on ``seed`` and the epoch number.

    Across ``world_size`` processes (:mod:`attnlab.train.distributed`), every process
    draws the same batches of ``batch_size`` sentences and takes every
    ``world_size``-th sentence of each, from its ``rank`` on: the processes together
    train on the batches one process would, each on a share of similar lengths. A batch
    with fewer sentences than processes is left out, on every process alike.

    With ``max_tokens``, a batch is cut where one more sentence would make it hold
    more than ``max_tokens`` positions padded (its sentences times its longest
    length), and at ``batch_size`` sentences at most: batches of long sentences are
    smaller, so that every step sees about the same number of tokens (Vaswani et al.
    batched by tokens, as fairseq's ``--max-tokens`` does). The budget is the whole
    batch's, before it is shared out, so the step size is the same for any number of
    processes; with gradient accumulation of ``k`` batches a step takes at most
    ``k * max_tokens`` positions. A sentence longer than the budget is a batch alone.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        bucket: bool = True,
        bucket_factor: int = 50,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        max_tokens: int | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        if max_tokens is not None and drop_last:
            raise ValueError(
                "drop_last keeps only full batches of batch_size, which a token budget "
                "(max_tokens) does not make: use one or the other"
            )
        if not 0 <= rank < world_size:
            raise ValueError(
                f"need 0 <= rank < world_size, got {rank} and {world_size}"
            )
        if batch_size < world_size:
            raise ValueError(
                f"a batch of {batch_size} cannot be shared by {world_size} processes"
            )
        self.rank, self.world_size = rank, world_size
        self.lengths = list(lengths)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.bucket, self.bucket_factor = bucket, bucket_factor
        self.drop_last, self.max_tokens = drop_last, max_tokens
        self.epoch = 0

    def _cut(self, chunk: list[int]) -> list[list[int]]:
        """``chunk`` (sorted by length when bucketing) cut into batches, in order."""
        if self.max_tokens is None:
            return [
                chunk[i : i + self.batch_size]
                for i in range(0, len(chunk), self.batch_size)
            ]
        batches, batch, longest = [], [], 0
        for i in chunk:
            grown = max(longest, self.lengths[i])
            if batch and (
                len(batch) == self.batch_size
                or (len(batch) + 1) * grown > self.max_tokens
            ):
                batches.append(batch)
                batch, grown = [], self.lengths[i]
            batch.append(i)
            longest = grown
        return batches + ([batch] if batch else [])

    def _batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + epoch)
        order = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(order)
        # Without shuffling, sort everything; with it, sort within windows only.
        window = (
            self.batch_size * self.bucket_factor if self.shuffle else max(len(order), 1)
        )
        if not self.bucket:
            window = self.batch_size
        batches = []
        for start in range(0, len(order), window):
            chunk = order[start : start + window]
            if self.bucket:
                chunk.sort(key=lambda i: self.lengths[i])
            batches += self._cut(chunk)
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            rng.shuffle(batches)
        if self.world_size > 1:  # this process's share of each batch
            batches = [
                b[self.rank :: self.world_size]
                for b in batches
                if len(b) >= self.world_size
            ]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches(self.epoch)
        self.epoch += 1
        return iter(batches)

    def __len__(self) -> int:
        return len(self._batches(0))


def make_loader(
    dataset: PairDataset,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    bucket: bool = True,
    pin_memory: bool | None = None,
    rank: int = 0,
    world_size: int = 1,
    max_tokens: int | None = None,
) -> DataLoader:
    """A DataLoader of :class:`Batch` objects, length-bucketed unless
    ``bucket=False``. Batches come in pinned memory (``pin_memory``, by default
    whenever CUDA is present), so that copying them to the GPU need not wait. With
    ``world_size`` processes, this process's share (``rank``) of every batch of
    ``batch_size``; with ``max_tokens``, batches of at most that many positions
    padded, counted by each pair's longer side (:class:`BucketBatchSampler`)."""
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    lengths = [
        max(len(s), len(t)) for s, t in (dataset[i] for i in range(len(dataset)))
    ]
    sampler = BucketBatchSampler(
        lengths,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        bucket=bucket,
        rank=rank,
        world_size=world_size,
        max_tokens=max_tokens,
    )
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=dataset.collate,
        pin_memory=pin_memory,
    )
