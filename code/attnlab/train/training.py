"""Training a sequence-to-sequence model with teacher forcing.

The trainer needs only the models' contract (:mod:`attnlab.models.contract`):
``model(src=..., src_len=..., tgt_in=...).logits`` is (B, T, V).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from attnlab.core.runtime import choose_device
from attnlab.data.batching import Batch
from attnlab.train import distributed, resume
from attnlab.train.distributed import Ranks

# What ``Trainer(precision=...)`` computes the forward pass in: float32, or bfloat16 or
# float16 where autocast allows (float16 with a gradient scaler, so that small gradients
# do not round to zero).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def masked_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    pad_id: int = 0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean cross-entropy over the non-padding target tokens.

    Shapes:
        logits: (B, T, V) unnormalised scores over the target vocabulary.
        targets: (B, T) ids; positions equal to ``pad_id`` contribute nothing.
    """
    if logits.shape[:2] != targets.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} do not match targets {tuple(targets.shape)}"
        )
    return F.cross_entropy(
        logits.flatten(0, 1),
        targets.flatten(),
        ignore_index=pad_id,
        label_smoothing=label_smoothing,
    )


def batch_loss(
    model: nn.Module, batch: Batch, *, pad_id: int = 0, label_smoothing: float = 0.0
) -> torch.Tensor:
    """The teacher-forced training loss of ``model`` on ``batch``."""
    logits = model(src=batch.src, src_len=batch.src_len, tgt_in=batch.tgt_in).logits
    return masked_cross_entropy(
        logits, batch.tgt_out, pad_id=pad_id, label_smoothing=label_smoothing
    )


@torch.no_grad()
def token_loss(
    logits_of: Callable[[Batch], torch.Tensor],
    batches: Iterable[Batch],
    *,
    device: torch.device | str,
    pad_id: int = 0,
) -> float:
    """Cross-entropy per target token over all ``batches``: summed over every real
    token, divided by their number (a batch weighs by its tokens, not as one mean).
    ``logits_of(batch)`` gives the (B, T, V) scores of ``batch.tgt_out``."""
    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    for batch in batches:
        count += int((batch.tgt_out != pad_id).sum())  # counted on the host
        batch = batch.to(device, non_blocking=True)
        logits = logits_of(batch)
        total += F.cross_entropy(
            logits.flatten(0, 1),
            batch.tgt_out.flatten(),
            ignore_index=pad_id,
            reduction="sum",
        )
    if count == 0:
        raise ValueError("no target tokens to score")
    return total.item() / count


@dataclass
class History:
    """What a run of :meth:`Trainer.fit` measured."""

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    # training seconds at each evaluation (``val_steps``): a learning curve's clock
    val_seconds: list[float] = field(default_factory=list)
    # more scores per evaluation, by name, as callbacks add them (e.g. validation BLEU)
    val_scores: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0  # training time: evaluations included, callbacks not
    tokens: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


Callback = Callable[[History], None]


@dataclass
class StepResult:
    """What one optimisation step gives back, on the device and not yet read: reading
    either (``float(result.loss)``) makes the host wait for the step on a GPU."""

    # (): the step's training loss (label smoothing included); across processes, this
    # process's share times their number (their mean is the step's loss)
    loss: torch.Tensor
    grad_norm: torch.Tensor  # (): the norm of the whole gradient, before clipping


class Trainer:
    """Adam (:func:`adam`), gradient clipping and masked cross-entropy, with a progress
    bar.

    ``optimizer`` and ``scheduler`` can be passed in to replace the defaults
    (Adam at ``lr``, 1e-3 unless given; no schedule). The scheduler is stepped
    after every step.

    ``precision`` (:data:`PRECISIONS`) is what the forward pass computes in. With
    ``ranks`` (:func:`attnlab.train.distributed.start`) of several processes, the model
    is wrapped in ``DistributedDataParallel``; ``model`` is then the wrapper and
    ``module`` the model itself (one process: both are the model).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        lr: float | None = None,
        clip: float | None = 1.0,
        label_smoothing: float = 0.0,
        pad_id: int = 0,
        device: torch.device | str | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        precision: str = "fp32",
        ranks: Ranks = distributed.ONE,
    ):
        if precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}"
            )
        device = torch.device(device) if device is not None else choose_device()
        self.ranks, self.precision = ranks, precision
        self.device = distributed.device_for(ranks, device)
        self.module = model.to(self.device)
        self.model = self.module
        if ranks.active:
            self.model = DistributedDataParallel(
                self.module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )
        if optimizer is not None and lr is not None:
            raise ValueError(
                "give either lr (for the default Adam) or "
                "an optimizer, not both: the optimizer's "
                "own learning rate would silently win"
            )
        self.optimizer = optimizer or adam(
            model.parameters(), lr=1e-3 if lr is None else lr
        )
        self.scheduler = scheduler
        self.scaler = (
            torch.amp.GradScaler(self.device.type) if precision == "fp16" else None
        )
        self.clip, self.label_smoothing, self.pad_id = clip, label_smoothing, pad_id

    def autocast(self):
        """The context the forward pass runs in: autocast to :attr:`precision`."""
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def loss(
        self, batch: Batch, *, label_smoothing: float | None = None
    ) -> torch.Tensor:
        smoothing = self.label_smoothing if label_smoothing is None else label_smoothing
        return batch_loss(
            self.model, batch, pad_id=self.pad_id, label_smoothing=smoothing
        )

    def step(
        self, batch: Batch | Sequence[Batch], *, gradient_scale: float = 1.0
    ) -> StepResult:
        """One optimisation step on ``batch``, or on several batches whose gradients add
        up (gradient accumulation); returns its loss and gradient norm as tensors on
        the device. Nothing here waits for the device: on a GPU the step is queued and
        the host goes on to the next batch (read the loss only when it is needed, as
        :meth:`fit` does every ``log_every`` steps). ``gradient_scale`` multiplies the
        gradient before it is clipped: an exploding gradient made to order.

        The loss is the mean over the step's target tokens, on every process together:
        the gradient is the one a single process would get from all of the step's
        batches at once."""
        self.model.train()
        batches = [batch] if isinstance(batch, Batch) else list(batch)
        if not batches:
            raise ValueError("a training step needs at least one batch")
        batches = [b.to(self.device, non_blocking=True) for b in batches]
        self.optimizer.zero_grad(set_to_none=True)
        if len(batches) == 1 and not self.ranks.active:
            with self.autocast():
                loss = self.loss(batches[0])  # teacher forcing, padding masked
            self._backward(loss)
        else:
            loss = self._accumulate(batches)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradient
        parameters = [p for p in self.module.parameters() if p.grad is not None]
        if gradient_scale != 1.0:
            for p in parameters:
                p.grad.mul_(gradient_scale)
        if self.clip is not None:
            norm = nn.utils.clip_grad_norm_(parameters, self.clip)
        else:
            norm = nn.utils.get_total_norm([p.grad for p in parameters])
        if self.scaler is not None:  # skips a step whose gradient overflowed
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return StepResult(loss.detach(), norm)

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def _accumulate(self, batches: list[Batch]) -> torch.Tensor:
        """The gradients of several batches, on one or several processes, added up as
        one batch's: each token's loss is divided by the number of target tokens of the
        whole step (counted on the device and summed over the processes, so nothing
        waits), and times the number of processes, whose gradients
        ``DistributedDataParallel`` averages. Only the last backward pass shares the
        gradients between processes."""
        tokens = sum((b.tgt_out != self.pad_id).sum() for b in batches).float()
        scale = self.ranks.world_size / distributed.all_sum(tokens, self.ranks)
        total = torch.zeros((), device=self.device)
        for i, batch in enumerate(batches):
            last = i == len(batches) - 1
            shared = last or not self.ranks.active
            with contextlib.nullcontext() if shared else self.model.no_sync():
                with self.autocast():
                    logits = self.model(
                        src=batch.src, src_len=batch.src_len, tgt_in=batch.tgt_in
                    ).logits
                summed = F.cross_entropy(
                    logits.float().flatten(0, 1),
                    batch.tgt_out.flatten(),
                    ignore_index=self.pad_id,
                    label_smoothing=self.label_smoothing,
                    reduction="sum",
                )
                part = summed * scale
                self._backward(part)
            total += part.detach()
        return total

    def train_step(self, batch: Batch) -> float:
        """:meth:`step`, then wait for its loss and check it is finite."""
        return _finite(self.step(batch).loss.item(), "the training loss")

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Batch]) -> float:
        """Mean per-token cross-entropy (no label smoothing) over ``batches`` (every
        process scores all of them)."""
        self.module.eval()
        return token_loss(
            lambda batch: (
                self.module(
                    src=batch.src, src_len=batch.src_len, tgt_in=batch.tgt_in
                ).logits
            ),
            batches,
            device=self.device,
            pad_id=self.pad_id,
        )

    def fit(
        self,
        batches: Iterable[Batch],
        *,
        max_steps: int,
        val_batches: Iterable[Batch] | None = None,
        eval_every: int | None = None,
        log_every: int = 10,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
        desc: str = "training",
        resume_path: str | os.PathLike | None = None,
        save_every: int | None = None,
        accumulate: int = 1,
    ) -> History:
        """Train for ``max_steps`` steps, cycling through ``batches`` (e.g. a
        DataLoader), ``accumulate`` batches a step (their gradients added up, as one
        batch ``accumulate`` times the size would give).

        Every ``log_every`` steps the mean training loss is recorded and each
        callback (e.g. :class:`attnlab.view.plots.LiveLossPlot`) is called with the
        history; every ``eval_every`` steps the loss on ``val_batches`` too. The time
        callbacks take (drawing, extra evaluations) is not counted as training time.

        With ``resume_path``, a resume point is written there every ``save_every``
        steps (default ``eval_every``) and at the end; if one is there already, training
        goes on from it and ends with the weights an uninterrupted run would have.

        Across processes (``ranks``), the history is every process's together (the
        same on each), and only rank 0 shows progress and writes the resume point,
        which every process resumes from.
        """
        if max_steps < 1 or accumulate < 1:
            raise ValueError(
                "max_steps and accumulate must be positive, got "
                f"{max_steps} and {accumulate}"
            )
        eval_every = eval_every or max_steps
        save_every = save_every or eval_every
        run = self._start(batches, max_steps, resume_path)  # or from a resume point
        bar = tqdm(
            total=max_steps,
            initial=run.step,
            desc=desc,
            disable=not progress or not self.ranks.is_main,
        )
        while run.step < max_steps:
            step = [run.next_batch() for _ in range(accumulate)]
            run.pending += self.step(step).loss  # summed on the device: no wait
            run.tokens += sum(int(batch.tgt_len.sum()) for batch in step)
            run.count += 1
            run.step += 1
            bar.update(1)
            evaluate_now = run.step % eval_every == 0 or run.step == max_steps
            if run.step % log_every == 0 or evaluate_now:
                self._log(run, bar, val_batches if evaluate_now else None, callbacks)
            if resume_path is not None and (
                run.step % save_every == 0 or run.step == max_steps
            ):
                run.collect(self.ranks)
                run.history.seconds = run.clock()
                point = self._resume_point(run, max_steps)  # every process's part
                if self.ranks.is_main:
                    resume.save(resume_path, point)
                distributed.barrier(self.ranks)  # written before anyone goes on
        bar.close()
        run.history.seconds = run.clock()
        for callback in callbacks:
            if hasattr(callback, "close"):
                callback.close(run.history)
        return run.history

    def _start(self, batches, max_steps: int, resume_path) -> "_Run":
        """A new run, or the run a resume point at ``resume_path`` left off: its weights
        and optimiser back, its data at the same place, then its generators."""
        run = _Run(
            batches,
            torch.zeros((), dtype=torch.float64, device=self.device),
            order=resume.batch_order(batches) if resume_path is not None else None,
        )
        if resume_path is None or not Path(resume_path).exists():
            run.start = time.perf_counter()
            return run
        point = resume.load(resume_path)
        point.check_fits(
            self.module,
            self.scheduler is not None,
            max_steps,
            world_size=self.ranks.world_size,
            scaler=self.scaler is not None,
        )
        self.module.load_state_dict(point.model)
        self.optimizer.load_state_dict(point.optimizer)
        if self.scheduler is not None:
            self.scheduler.load_state_dict(point.scheduler)
        if self.scaler is not None:
            self.scaler.load_state_dict(point.scaler)
        run.history = History(**point.history)
        run.step, run.epoch, run.position = point.step, point.epoch, point.position
        run.running, run.count = point.running, point.count
        run.replay()
        run.start = time.perf_counter() - run.history.seconds
        # after replaying the data, which draws a number to seed the loader
        resume.set_rng_states(point.rng[self.ranks.rank])
        return run

    def _log(
        self, run: "_Run", bar, val_batches, callbacks: Sequence[Callback]
    ) -> None:
        """Record the mean training loss since the last log (and the validation loss,
        if ``val_batches``), then call the callbacks, whose time is not training
        time."""
        history = run.history
        run.collect(self.ranks)
        history.steps.append(run.step)
        history.train_loss.append(run.running / run.count)
        bar.set_postfix(loss=f"{run.running / run.count:.3f}")
        run.running, run.count = 0.0, 0
        if val_batches is not None:
            history.val_steps.append(run.step)
            history.val_loss.append(self.evaluate(val_batches))
            history.val_seconds.append(run.clock())
        history.seconds = run.clock()
        began = time.perf_counter()
        for callback in callbacks if self.ranks.is_main else ():
            callback(history)
        run.start += time.perf_counter() - began  # not training time

    def _resume_point(self, run: "_Run", max_steps: int) -> resume.ResumePoint:
        return resume.ResumePoint(
            model={k: v.detach().cpu() for k, v in self.module.state_dict().items()},
            optimizer=self.optimizer.state_dict(),
            scheduler=(
                self.scheduler.state_dict() if self.scheduler is not None else None
            ),
            scaler=self.scaler.state_dict() if self.scaler is not None else None,
            world_size=self.ranks.world_size,
            max_steps=max_steps,
            step=run.step,
            epoch=run.epoch,
            position=run.position,
            running=run.running,
            count=run.count,
            history=run.history.to_dict(),
            # every process's generators, in rank order (a collective: all call it)
            rng=distributed.gather(resume.rng_states(), self.ranks),
        )


@dataclass
class _Run:
    """Where a call of :meth:`Trainer.fit` is: its place in the data, its losses not yet
    read, its clock (what a resume point saves besides the tensors, and the loop's own
    state)."""

    batches: Iterable[Batch]
    # The losses since the last log, summed where they are computed (float64: exact for
    # these few float32 values, so where the sum is read does not change it).
    pending: torch.Tensor
    order: object | None = None  # the sampler that replays the data (resume only)
    history: History = field(default_factory=History)
    step: int = 0
    epoch: int = 0  # which pass over the data (the sampler's epoch for a loader)
    position: int = 0  # batches already taken from this pass
    running: float = 0.0  # loss summed since the last logged step
    count: int = 0
    tokens: int = 0  # this process's target tokens since the last collect
    start: float = 0.0  # perf_counter() at the start, moved on by untimed work
    iterator: Iterator[Batch] | None = None

    def clock(self) -> float:
        """Training seconds so far."""
        return time.perf_counter() - self.start

    def next_batch(self) -> Batch:
        """The next batch, starting a new pass over the data when one ends."""
        while True:
            if self.iterator is None:
                self.epoch = self.order.epoch if self.order is not None else self.epoch
                self.iterator, self.position = iter(self.batches), 0
            batch = next(self.iterator, None)
            if batch is not None:
                self.position += 1
                return batch
            if self.position == 0:
                raise ValueError("the training data yielded no batches")
            self.iterator = None
            self.epoch += self.order is None

    def replay(self) -> None:
        """After a resume: the same pass over the data, past the batches already
        trained on (a resume point is written after a step, so inside a pass)."""
        if self.order is not None:
            self.order.epoch = self.epoch
        self.iterator = iter(self.batches)
        for _ in range(self.position):
            next(self.iterator)

    def collect(self, ranks: Ranks) -> None:
        """Add the losses summed on the device since the last call to ``running``, and
        the tokens to the history's, each the mean and the sum over the processes (one
        wait for the device), check them and reset the sums."""
        if ranks.active:
            shared = torch.stack([self.pending, self.pending.new_tensor(self.tokens)])
            loss, tokens = distributed.all_sum(shared, ranks).tolist()
            loss, tokens = loss / ranks.world_size, int(tokens)
        else:
            loss, tokens = self.pending.item(), self.tokens
        self.running += _finite(loss, f"the training loss (steps up to {self.step})")
        self.history.tokens += tokens
        self.pending.zero_()
        self.tokens = 0


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise FloatingPointError(
            f"{what} became {value}; lower the learning rate or check the data"
        )
    return value


def adam(parameters, **options) -> torch.optim.Adam:
    """The course's Adam: the fused implementation, which updates every parameter in
    one pass and keeps its step count on the parameters' device, so that a step never
    reads a number back on the host (the loop implementation reads the count once per
    parameter: 88 reads a step for chapter 5's Transformer)."""
    return torch.optim.Adam(parameters, fused=True, **options)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def warmup_linear_schedule(
    optimizer: torch.optim.Optimizer,
    *,
    warmup: int,
    total: int,
    decay: bool = True,
    decay_steps: int | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning rate rising linearly for ``warmup`` steps, then falling linearly to zero
    at ``total``. With ``decay=False`` it is held at its peak instead; with
    ``decay_steps``, it is held, then falls to zero over the last ``decay_steps``
    steps. With ``warmup=0``, no warm-up."""
    if not 0 <= warmup < total:
        raise ValueError(
            f"need 0 <= warmup < total, got warmup={warmup}, total={total}"
        )
    if decay_steps is None:
        decay_steps = total - warmup if decay else 0
    if not 0 <= decay_steps <= total - warmup:
        raise ValueError(
            f"decay_steps must be between 0 and total - warmup = "
            f"{total - warmup}, got {decay_steps}"
        )

    def factor(step: int) -> float:
        rise = (step + 1) / warmup if warmup else 1.0
        fall = min(1.0, max(0.0, (total - step) / decay_steps)) if decay_steps else 1.0
        return min(rise, fall)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def inverse_sqrt_schedule(
    optimizer: torch.optim.Optimizer, *, warmup: int, d_model: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Vaswani et al.'s schedule: the rate grows linearly for ``warmup`` steps, then
    decays as 1/sqrt(step): ``d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)``, a
    factor on the optimiser's base rate (set it to 1.0 to follow the paper exactly)."""
    if warmup < 1 or d_model < 1:
        raise ValueError(
            f"warmup and d_model must be positive, got {warmup}, {d_model}"
        )
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: d_model**-0.5 * min((step + 1) ** -0.5, (step + 1) * warmup**-1.5),
    )
