"""The debugging lab: small Transformers that train and look plausible, each with one
planted bug from the course's pitfalls, and the probes that give each bug away.

Every model is chapter 5's :class:`~attnlab.models.transformer.Transformer`, small, on
the reversal task with padding; a bug is planted where it would be written by mistake
(in an attention, in the batch, in the loss, in the initialisation). Each probe is a
measurement the course teaches, returning one number; on the correct model and on the
model with its bug the readings differ by a stated margin (:data:`BUGS`), which the
tests check in the smoke profile.

Shapes: B batch, S source length, T target length, D model width, h heads, V
vocabulary.
"""

from __future__ import annotations

import math
import random
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.core.runtime import Profile
from attnlab.course.checking import Report
from attnlab.data.batching import Batch
from attnlab.data.dataset import Seq2SeqData
from attnlab.data.synthetic import reversal_task
from attnlab.measure.analysis import source_gradient_norms
from attnlab.models.transformer import Transformer
from attnlab.nn import masks
from attnlab.nn.attention import masked_softmax
from attnlab.nn.multihead import MultiHeadAttention
from attnlab.train.training import Trainer


@dataclass(frozen=True)
class Bug:
    """A planted bug, the probe that gives it away, and how its reading must differ."""

    key: str
    name: str  # what a learner would name it
    probe: str  # the key of the probe in PROBES that gives it away
    fix: str  # one sentence: the fix
    # (correct, buggy) -> whether the buggy reading is beyond the margin
    margin: str  # the margin, in words
    beyond: Callable[[float, float], bool] = field(repr=False, compare=False)


BUGS = [
    Bug(
        "inverted-mask",
        "the padding mask's polarity is inverted",
        "attention_on_padding",
        "mask with True at the real positions (`padding_mask`, not `~padding_mask`)",
        "over half the attention on padding, against none",
        lambda ok, bad: ok < 1e-6 and bad > 0.5,
    ),
    Bug(
        "unshifted",
        "the decoder input is not shifted behind <bos>",
        "input_is_target",
        "the decoder reads `<bos>` and the target without its last token",
        "every decoder input equals its target, against under a third",
        lambda ok, bad: ok < 1 / 3 and bad == 1.0,
    ),
    Bug(
        "no-scale",
        "the scores are not divided by √d_k",
        "attention_entropy",
        "divide the scores by `math.sqrt(d_k)` before the softmax",
        "attention at initialisation at least 0.1 less spread (entropy / log S)",
        lambda ok, bad: ok - bad > 0.1,
    ),
    Bug(
        "padding-in-loss",
        "padding is counted in the loss",
        "pad_probability",
        "average the loss over the real tokens (`ignore_index=pad_id`)",
        "three times the probability of <pad> where the targets are padding",
        lambda ok, bad: bad > 3 * ok,
    ),
    Bug(
        "no-causal-mask",
        "the decoder's self-attention has no causal mask",
        "future_leak",
        "give the decoder's self-attention the causal mask when training",
        "outputs that change with later inputs, against none",
        lambda ok, bad: ok < 1e-5 and bad > 1e-3,
    ),
    Bug(
        "embedding-scale",
        "embeddings scaled by √D on top of N(0, 1) initialisation",
        "embedding_to_position",
        "initialise embeddings with N(0, 1/D) before the √D",
        "embeddings four times as large against the positions",
        lambda ok, bad: bad > 4 * ok,
    ),
    Bug(
        "dropout-at-eval",
        "dropout is left on at evaluation",
        "eval_repeatability",
        "evaluate under `model.eval()`, which turns dropout off",
        "two evaluations of one batch that differ, against identical ones",
        lambda ok, bad: ok == 0.0 and bad > 1e-4,
    ),
    Bug(
        "softmax-axis",
        "the attention softmax runs over the queries",
        "attention_row_sums",
        "take the softmax over the keys, the last axis",
        "rows of weights off 1 by 0.1 or more, against 1",
        lambda ok, bad: ok < 1e-4 and bad > 0.1,
    ),
]
BY_KEY = {bug.key: bug for bug in BUGS}


# --- planting the bugs ---------------------------------------------------------------


def _attend_with(
    scores_to_weights: Callable,
    *,
    scale: bool = True,
    change_mask: Callable | None = None,
):
    """An ``attend`` for MultiHeadAttention that computes the weights explicitly, with
    a planted change."""

    def attend(self, q, k, v, *, mask=None, causal=False, need_weights=False):
        batch, _, queries, _ = q.shape
        if causal:  # the decoder's self-attention in training
            mask = masks.causal_mask(queries, q.device)
        if change_mask is not None:
            mask = change_mask(mask)
        mask = masks.for_heads(masks.check(mask, queries, k.shape[2]))
        scores = q @ k.transpose(-2, -1)
        if scale:
            scores = scores / math.sqrt(self.d_k)
        weights = scores_to_weights(scores, mask)
        if self.training and self.dropout:
            weights = F.dropout(weights, self.dropout)
        heads = (
            (weights @ v)
            .transpose(1, 2)
            .reshape(batch, queries, self.num_heads * self.d_k)
        )
        return self.W_o(heads), (weights if need_weights else None)

    return attend


def _wrong_axis(scores, mask):
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-2)


def _patch(modules: Iterable[MultiHeadAttention], attend) -> None:
    for module in modules:
        module.attend = types.MethodType(attend, module)


def _always_dropout(module: nn.Dropout):
    module.forward = lambda x: F.dropout(x, module.p, training=True)


def plant(model: Transformer, bug: str | None) -> Transformer:
    """``model`` with ``bug`` planted (None: unchanged). Bugs of the batch or the loss
    (``unshifted``, ``padding-in-loss``) leave the model as it is."""
    encoder = [layer.self_attention for layer in model.encoder]
    decoder_self = [layer.self_attention for layer in model.decoder]
    cross = [layer.cross_attention for layer in model.decoder]
    if bug == "inverted-mask":
        # a padding mask (B, 1, S) turned the wrong way round; other masks untouched
        _patch(
            encoder + cross,
            _attend_with(
                masked_softmax,
                change_mask=lambda m: ~m if m is not None and m.dim() == 3 else m,
            ),
        )
    elif bug == "no-scale":
        _patch(
            encoder + decoder_self + cross, _attend_with(masked_softmax, scale=False)
        )
    elif bug == "no-causal-mask":
        _patch(decoder_self, _attend_with(masked_softmax, change_mask=lambda m: None))
    elif bug == "softmax-axis":
        _patch(encoder + decoder_self + cross, _attend_with(_wrong_axis))
    elif bug == "embedding-scale":
        for embedding in (model.src_embedding, model.tgt_embedding):
            with torch.no_grad():
                embedding.weight.normal_(0.0, 1.0)
                embedding.weight[embedding.padding_idx].zero_()
    elif bug == "dropout-at-eval":
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                _always_dropout(module)
    elif bug is not None and bug not in BY_KEY:
        raise ValueError(f"unknown bug {bug!r}; the lab's bugs are {sorted(BY_KEY)}")
    return model


class Unshifted:
    """Batches whose decoder input is the target itself (the ``unshifted`` bug)."""

    def __init__(self, batches: Iterable[Batch]):
        self.batches = batches

    def __iter__(self):
        for b in self.batches:
            yield Batch(b.src, b.src_len, b.tgt_out, b.tgt_out, b.tgt_len)


# --- the lab's task, models and training ----------------------------------------------


def lab_data(profile: Profile) -> Seq2SeqData:
    """Reversal of 3 to 10 letters: short enough to train in seconds, with padding."""
    n_train = profile.pick(smoke=2_000, full=20_000)
    return reversal_task(
        n_train=n_train, n_val=200, n_test=200, min_len=3, max_len=10, seed=0
    )


def lab_model(
    data: Seq2SeqData, bug: str | None = None, *, seed: int = 0
) -> Transformer:
    """A small Transformer (D = 64, 2 heads, one layer a side) with ``bug`` planted."""
    torch.manual_seed(seed)
    model = Transformer(
        len(data.src_vocab),
        len(data.tgt_vocab),
        d_model=64,
        num_heads=2,
        num_layers=1,
        d_ff=128,
        dropout=0.1,
        max_len=32,
    )
    return plant(model, bug)


@dataclass
class Trained:
    """A lab model after training, with what its training showed."""

    bug: str | None
    model: Transformer
    steps: list[int]  # the steps at which the training loss was logged
    losses: list[float]  # the training loss there
    seconds: float  # training time


def train(
    data: Seq2SeqData,
    bug: str | None,
    profile: Profile,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Trained:
    """Train a lab model with ``bug`` for the profile's budget (the same for all)."""
    steps = profile.pick(smoke=30, full=400)
    model = lab_model(data, bug, seed=seed)
    pad_id = -100 if bug == "padding-in-loss" else data.tgt_vocab.pad_id
    trainer = Trainer(model, lr=2e-3, pad_id=pad_id, device=device)
    batches = data.loader("train", 64, seed=seed)
    if bug == "unshifted":
        batches = Unshifted(batches)
    history = trainer.fit(
        batches,
        max_steps=steps,
        log_every=max(1, steps // 10),
        progress=progress,
        desc=f"lab: {bug or 'correct'}",
    )
    return Trained(
        bug, model.eval(), history.steps, history.train_loss, history.seconds
    )


def probe_batch(
    data: Seq2SeqData, *, size: int = 32, seed: int = 0, bug: str | None = None
) -> Batch:
    """Held-out pairs of mixed lengths in one batch, so that there is padding (built
    as the training batches of the model with ``bug`` were)."""
    dataset = data.dataset("val")
    rows = random.Random(seed).sample(range(len(dataset)), size)
    batch = dataset.collate([dataset[i] for i in rows])
    return next(iter(Unshifted([batch]))) if bug == "unshifted" else batch


# --- the probes: one number each -----------------------------------------------------


@dataclass
class Mystery:
    """A lab model as the learner meets it: trained, its bug unnamed. ``build()`` gives
    the same model untrained; ``batch`` is a held-out batch built as its training
    batches were."""

    label: str
    trained: Trained
    build: Callable[[], Transformer] = field(repr=False)
    batch: Batch = field(repr=False)

    @property
    def model(self) -> Transformer:
        return self.trained.model


@torch.no_grad()
def _weights(model: Transformer, batch: Batch):
    model.eval()
    return model(
        src=batch.src, src_len=batch.src_len, tgt_in=batch.tgt_in, need_weights=True
    ).layers


def attention_on_padding(mystery: Mystery) -> float:
    """The share of the cross-attention's weight that falls on padded source positions,
    in the sentences that have padding."""
    batch = mystery.batch
    cross = _weights(mystery.model, batch).cross[-1]  # (B, h, T, S)
    padded = ~masks.padding_mask(batch.src_len, batch.src.shape[1])  # (B, 1, S)
    has_padding = padded.any(-1)[:, 0]  # (B,)
    weights = cross[has_padding]
    return float((weights * padded[has_padding][:, None]).sum() / weights.sum())


def input_is_target(mystery: Mystery) -> float:
    """The share of real target positions whose decoder input is the target itself."""
    batch = mystery.batch
    real = masks.length_mask(batch.tgt_len, batch.tgt_out.shape[1])
    return float(((batch.tgt_in == batch.tgt_out) & real).sum() / real.sum())


@torch.no_grad()
def attention_entropy(mystery: Mystery) -> float:
    """How spread the encoder's self-attention is at initialisation: the entropy of each
    real query's weights divided by log(its number of keys), averaged (1: uniform)."""
    model, batch = mystery.build().eval(), mystery.batch
    weights = model.encode(batch.src, batch.src_len, need_weights=True).weights[0]
    keys = batch.src_len.clamp(min=2).float().log()[:, None, None]  # (B, 1, 1)
    entropy = -(weights * weights.clamp(min=1e-12).log()).sum(-1) / keys  # (B, h, S)
    real = masks.length_mask(batch.src_len, batch.src.shape[1])[:, None]  # (B, 1, S)
    return float((entropy * real).sum() / (real.sum() * entropy.shape[1]))


@torch.no_grad()
def pad_probability(mystery: Mystery) -> float:
    """The mean probability the trained model gives to ``<pad>`` at the positions where
    the target is padding (after ``<eos>``): where no prediction is ever needed."""
    model, batch = mystery.model.eval(), mystery.batch
    logits = model(src=batch.src, src_len=batch.src_len, tgt_in=batch.tgt_in).logits
    padded = ~masks.length_mask(batch.tgt_len, batch.tgt_out.shape[1])
    probs = torch.softmax(logits, -1)[..., model.pad_id]  # (B, T)
    return float(probs[padded].mean())


@torch.no_grad()
def future_leak(mystery: Mystery) -> float:
    """How much the outputs at the steps before the last change when only the last
    decoder input changes (teacher forcing): zero for a decoder that cannot look
    ahead."""
    model, batch = mystery.model.eval(), mystery.batch
    tgt_in = batch.tgt_in.clone()
    before = model(src=batch.src, src_len=batch.src_len, tgt_in=tgt_in).logits
    tgt_in[:, -1] = (tgt_in[:, -1] + 1) % model.out.out_features
    after = model(src=batch.src, src_len=batch.src_len, tgt_in=tgt_in).logits
    return float((after[:, :-1] - before[:, :-1]).abs().max())


@torch.no_grad()
def embedding_to_position(mystery: Mystery) -> float:
    """How large the scaled source embeddings are against the positional encodings they
    are added to (root mean squares; about 1.4 when both have unit scale), at
    initialisation."""
    model = mystery.build()
    weight = model.src_embedding.weight
    rows = torch.arange(weight.shape[0]) != model.pad_id
    embedded = weight[rows] * model.scale
    return float(
        embedded.pow(2).mean().sqrt()
        / model.positions.encoding[:32].pow(2).mean().sqrt()
    )


@torch.no_grad()
def eval_repeatability(mystery: Mystery) -> float:
    """The largest difference between two evaluations of one batch in ``eval()``
    mode."""
    model, batch = mystery.model.eval(), mystery.batch
    first, second = (
        model(src=batch.src, src_len=batch.src_len, tgt_in=batch.tgt_in).logits
        for _ in range(2)
    )
    return float((first - second).abs().max())


def attention_row_sums(mystery: Mystery) -> float:
    """How far the encoder's attention weights of a real query sum from 1, at most."""
    batch = mystery.batch
    weights = _weights(mystery.model, batch).encoder[0]  # (B, h, S, S)
    real = masks.length_mask(batch.src_len, batch.src.shape[1])  # (B, S)
    sums = weights.sum(-1).transpose(1, 2)[real]  # (real, h)
    return float((sums - 1).abs().max())


def source_gradient(mystery: Mystery) -> float:
    """The mean norm of the loss's gradient with respect to each real source token's
    embedding (chapters 2 and 3): zero when the loss cannot reach the source."""
    model, batch = mystery.model, mystery.batch
    norms = source_gradient_norms(
        model, batch, embedding=model.src_embedding, pad_id=model.pad_id
    )  # (B, S)
    return float(norms.sum() / batch.src_mask.sum())


def overfit_one_batch(mystery: Mystery, steps: int = 60) -> float:
    """The training loss after ``steps`` steps on one batch alone, from initialisation,
    with the model's own loss: a model that can learn gets it close to zero."""
    model, batch = mystery.build(), mystery.batch
    pad_id = -100 if mystery.trained.bug == "padding-in-loss" else model.pad_id
    trainer = Trainer(model, lr=3e-3, pad_id=pad_id, device="cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for _ in range(steps):
            loss = trainer.step(batch).loss
    model.eval()
    return float(loss)


PROBES: dict[str, Callable[[Mystery], float]] = {
    "attention_on_padding": attention_on_padding,
    "input_is_target": input_is_target,
    "attention_entropy": attention_entropy,
    "pad_probability": pad_probability,
    "future_leak": future_leak,
    "embedding_to_position": embedding_to_position,
    "eval_repeatability": eval_repeatability,
    "attention_row_sums": attention_row_sums,
    # second opinions: no bug's giveaway, but each reacts to some of them
    "source_gradient": source_gradient,
    "overfit_one_batch": overfit_one_batch,
}


def mysteries(
    data: Seq2SeqData,
    profile: Profile,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[Mystery, dict[str, Mystery]]:
    """The correct model, and the buggy ones under the letters A, B, ... in an order
    drawn from ``seed`` (so that the letter does not give the bug away)."""
    order = [bug.key for bug in BUGS]
    random.Random(seed).shuffle(order)

    def mystery(label, bug):
        trained = train(data, bug, profile, seed=seed, device=device, progress=progress)
        trained.model.cpu()
        return Mystery(
            label,
            trained,
            lambda: lab_model(data, bug, seed=seed),
            probe_batch(data, seed=seed, bug=bug),
        )

    correct = mystery("correct", None)
    return correct, {
        chr(ord("A") + i): mystery(chr(ord("A") + i), bug)
        for i, bug in enumerate(order)
    }


def readings(
    correct: Mystery, found: dict[str, Mystery]
) -> dict[str, dict[str, float]]:
    """Every probe on every model: probe -> {"correct": ..., "A": ..., ...}."""
    return {
        name: {
            "correct": probe(correct),
            **{label: probe(m) for label, m in found.items()},
        }
        for name, probe in PROBES.items()
    }


def diagnose(mystery: Mystery, bug: str, correct: Mystery) -> Report:
    """The learner's diagnosis of ``mystery``: ``bug`` is one of :data:`BUGS`' keys.
    Right: the fix is applied (the model built again without the bug) and the probe
    that gives it away is read on both. Wrong: says so, and what the named bug's probe
    reads on this model."""
    if bug not in BY_KEY:
        return Report(
            "diagnose",
            False,
            f"✗ {bug!r} is not one of the lab's bugs: "
            f"choose one of {', '.join(sorted(BY_KEY))}.",
            written=False,
        )
    named = BY_KEY[bug]
    probe = PROBES[named.probe]
    reading, healthy = probe(mystery), probe(correct)
    if mystery.trained.bug != bug:
        return Report(
            "diagnose",
            False,
            f"✗ Model {mystery.label} does not have that bug: its "
            f"{named.probe} reads {reading:.3g}, and the correct model's "
            f"{healthy:.3g}. Try another probe.",
        )
    return Report(
        "diagnose",
        True,
        f"✓ Model {mystery.label}: {named.name}. Fixed ({named.fix}), its "
        f"{named.probe} reads {healthy:.3g} instead of {reading:.3g}.",
    )
