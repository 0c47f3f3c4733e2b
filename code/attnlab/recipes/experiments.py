"""The course's shared experiments: the same data, budgets and evaluation in every
chapter.

Chapters compare models trained on the same data with the same budget, and a
later chapter reuses a model an earlier one trained (through the cache of
:func:`attnlab.train.checkpoints.train_or_load`), so the settings live here, once,
per profile.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from attnlab import __version__
from attnlab.core.runtime import Profile, build_dir, choose_device
from attnlab.data.corpus import fra_eng_text, parse_tsv
from attnlab.data.dataset import Seq2SeqData, cached_data, translation_data
from attnlab.data.subwords import subword_data
from attnlab.data.synthetic import reversal_task
from attnlab.measure.evaluation import evaluate_translation
from attnlab.models.bahdanau import AttentionEncoderDecoder
from attnlab.models.contract import Generator
from attnlab.models.rnn import EncoderDecoder
from attnlab.models.transformer import Transformer
from attnlab.train.checkpoints import DATA_CODE, code_hash, spec_hash, train_or_load
from attnlab.train.training import (
    Callback,
    Trainer,
    adam,
    count_parameters,
    warmup_linear_schedule,
)


@dataclass(frozen=True)
class Budget:
    """How long a model trains: a number of steps (deterministic, unlike a time
    limit)."""

    steps: int
    batch_size: int
    lr: float
    log_every: int
    eval_every: int
    warmup: int = 0  # steps of linear warm-up (0: none)
    label_smoothing: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's
    decay: bool = False  # then a linear decay to zero at the last step (False: the peak
    #                      rate is held to the end, or to the last ``cooldown`` steps)
    cooldown: int = 0  # with decay=False: the last steps, over which it falls to 0
    # With a token budget: positions padded a step (its batches cut to them, at most
    # batch_size sentences each), the same on any number of processes.
    max_tokens: int | None = None

    def spec(self) -> dict:
        """The budget as it enters a model's cache key: every field."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Sizes:
    """The sizes of the course's recurrent models for one kind of task."""

    embed: int  # embedding size
    hidden: int  # the GRUs' hidden size (decoder; encoder, both directions)
    attention: int  # hidden size of the additive attention
    proj: int  # width of the prediction head before the vocabulary layer
    dropout: float

    @classmethod
    def at_width(cls, width: int) -> "Sizes":
        """The recurrent models at ``width`` (the hidden state), the rest half of it,
        no dropout: chapter 6's models of one width for timing."""
        return cls(
            embed=width // 2,
            hidden=width,
            attention=width // 2,
            proj=width // 2,
            dropout=0.0,
        )


@dataclass(frozen=True)
class TransformerSizes:
    """The sizes of the course's Transformer."""

    d_model: int = 128  # the model's width
    num_heads: int = 4
    num_layers: int = 2  # encoder layers, and as many decoder layers
    d_ff: int = 512  # the feed-forward network's hidden width

    @classmethod
    def at_width(cls, width: int) -> "TransformerSizes":
        """At width ``width``, with a feed-forward network four times as wide."""
        return cls(d_model=width, d_ff=4 * width)


# Chapter 5's Transformer: about 2.7 M parameters on fra-eng, as many as chapters 2 and
# 3's models.
TRANSFORMER_SIZES = TransformerSizes()

# By what a task's tokens are (``Seq2SeqData.units``): words of a language need larger
# embeddings and some dropout; a few dozen symbols of a synthetic task need neither.
SIZES = {
    "words": Sizes(embed=128, hidden=256, attention=128, proj=128, dropout=0.1),
    "subwords": Sizes(embed=128, hidden=256, attention=128, proj=128, dropout=0.1),
    "symbols": Sizes(embed=32, hidden=256, attention=64, proj=64, dropout=0.0),
}


def fra_eng_settings(profile: Profile) -> dict:
    shared = dict(max_len=10, min_freq=2, seed=0, length_edges=(3, 5, 7, 10))
    return profile.pick(
        smoke=dict(n_train=2_000, n_val=100, n_test=200, **shared),
        full=dict(n_train=20_000, n_val=500, n_test=1_000, **shared),
    )


def data_dir() -> Path:
    """Where the prepared data sets are kept: ``data/`` in the build folder."""
    return build_dir() / "data"


def fra_eng_key(text: str, settings: dict, *, folder: Path | None = None) -> str:
    """What names the prepared fra-eng data: the corpus's text, the settings, and the
    code of the subpackage that prepares it
    (:data:`attnlab.train.checkpoints.DATA_CODE`, in ``folder``, this library unless
    given)."""
    code = (
        code_hash(packages=DATA_CODE)
        if folder is None
        else code_hash(folder, DATA_CODE)
    )
    corpus = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return spec_hash(
        {"corpus": corpus, "settings": settings, "code": code, "attnlab": __version__}
    )


@functools.lru_cache(maxsize=4)
def _fra_eng(settings: tuple) -> Seq2SeqData:
    text, settings = fra_eng_text(), dict(settings)  # the corpus, verified
    path = data_dir() / f"fra-eng-{fra_eng_key(text, settings)}.json.gz"
    return cached_data(
        path,
        lambda: translation_data(
            parse_tsv(text, origin="fra.txt"), name="fra-eng", **settings
        ),
    )


def fra_eng_data(profile: Profile) -> Seq2SeqData:
    """The English-French data every chapter trains on (20k training pairs of <= 10
    tokens). Prepared once (tokenised, filtered, split, vocabularies built) and then
    read from the build folder's ``data/`` (:func:`data_dir`), under a name that
    changes with the corpus, the settings and the code that prepares them."""
    return _fra_eng(tuple(sorted(fra_eng_settings(profile).items())))


def real_lengths_settings(profile: Profile) -> dict:
    """The English-French pairs at every length the corpus has (no pair in it is longer
    than 60 tokens a side), held out by source length: 300 test sources of each bucket
    of 1-5, 6-10, 11-15, 16-20 and 21-60 words, or half of a bucket's where it has
    fewer (the corpus has few sentences of over 20 words), so that BLEU by length rests
    on as many long sentences as there are; subwords from a BPE of 4,000 merges a side
    learnt on the training split."""
    shared = dict(max_len=60, min_freq=1, seed=0, test_by_length=True)
    return profile.pick(
        smoke=dict(
            n_train=4_000, n_val=100, n_test=30, length_edges=(5, 10, 20, 60), **shared
        ),
        full=dict(
            n_train=None,
            n_val=1_000,
            n_test=300,
            length_edges=(5, 10, 15, 20, 60),
            **shared,
        ),
    ) | {"merges": profile.pick(smoke=300, full=4_000)}


@functools.lru_cache(maxsize=2)
def _real_lengths(settings: tuple) -> Seq2SeqData:
    text, settings = fra_eng_text(), dict(settings)
    merges = settings.pop("merges")
    key = fra_eng_key(text, {**settings, "merges": merges})
    return cached_data(
        data_dir() / f"fra-eng-bpe-{key}.json.gz",
        lambda: subword_data(
            translation_data(
                parse_tsv(text, origin="fra.txt"), name="fra-eng-all", **settings
            ),
            src_merges=merges,
            tgt_merges=merges,
        ),
    )


def real_lengths_data(profile: Profile) -> Seq2SeqData:
    """English-French at the corpus's own lengths, in subwords
    (:func:`real_lengths_settings`), prepared once and then read from :func:`data_dir`
    as :func:`fra_eng_data` is."""
    return _real_lengths(tuple(sorted(real_lengths_settings(profile).items())))


def reversal_settings(profile: Profile) -> dict:
    return profile.pick(
        smoke=dict(n_train=2_000, n_val=100, n_test=300, min_len=5, max_len=40, seed=0),
        full=dict(
            n_train=20_000, n_val=500, n_test=2_000, min_len=5, max_len=40, seed=0
        ),
    )


def reversal_data(profile: Profile) -> Seq2SeqData:
    """Reversal of letter strings of length 5 to 40."""
    return reversal_task(**reversal_settings(profile))


def budget(task: str, profile: Profile) -> Budget:
    """The training budget of each task, the same for every model the course
    compares."""
    # English-French: one recipe for the three models the course compares: Vaswani et
    # al.'s (2017) label smoothing 0.1 and Adam's beta2 = 0.98, and a learning rate that
    # warms up, is held, and falls to zero over the last quarter of the steps. Chapter 6
    # then compares architectures, not recipes.
    recipe = dict(label_smoothing=0.1, betas=(0.9, 0.98))
    budgets = {
        "fra-eng": profile.pick(
            smoke=Budget(60, 64, 2e-3, 10, 30, warmup=10, cooldown=15, **recipe),
            full=Budget(2_800, 128, 2e-3, 50, 400, warmup=200, cooldown=700, **recipe),
        ),
        "reversal": profile.pick(
            smoke=Budget(40, 64, 3e-3, 10, 20), full=Budget(800, 128, 3e-3, 50, 200)
        ),
        "positions": profile.pick(
            smoke=Budget(60, 64, 2e-3, 10, 60, warmup=10, decay=True),
            full=Budget(1_500, 128, 2e-3, 50, 500, warmup=100, decay=True),
        ),
        "language-model": profile.pick(
            smoke=Budget(40, 64, 2e-3, 10, 40, warmup=10, decay=True),
            full=Budget(600, 128, 2e-3, 50, 600, warmup=50, decay=True),
        ),
    }
    # Chapter 5's ablation: short runs at twice that peak rate, where warm-up decides;
    # half the batch and three seeds of each arm, to fit the chapter's budget.
    budgets["transformer-ablation"] = replace(
        budgets["fra-eng"],
        lr=4e-3,
        decay=True,
        cooldown=0,
        **profile.pick(
            smoke=dict(steps=20, log_every=5, eval_every=10, warmup=5),
            full=dict(steps=200, batch_size=64, log_every=25, eval_every=50, warmup=50),
        ),
    )
    # Chapter 6's seeds on a CPU (a GPU trains them with the full budget): the
    # Transformer with seeds 0, 1 and 2 and the same recipe, on a tenth of the sentence
    # pairs the full budget shows (500 steps of 64), within the chapter's budget. The
    # recurrent models have not started to translate that early, so they are not seeded.
    budgets["fra-eng-seeds"] = replace(
        budgets["fra-eng"],
        **profile.pick(
            smoke=dict(steps=20, log_every=5, eval_every=20, warmup=5, cooldown=5),
            full=dict(
                steps=500,
                batch_size=64,
                log_every=25,
                eval_every=250,
                warmup=50,
                cooldown=125,
            ),
        ),
    )
    # Chapter 6: the Transformer on reversal, with the RNNs' steps, batch and peak rate.
    budgets["reversal-transformer"] = replace(
        budgets["reversal"],
        warmup=profile.pick(smoke=5, full=200),
        betas=(0.9, 0.98),
        decay=True,
    )
    if task not in budgets:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(budgets)}")
    return budgets[task]


def gru_model(data: Seq2SeqData, sizes: Sizes | None = None) -> EncoderDecoder:
    """Chapter 2's encoder-decoder, sized for the task's units (about 2.6 M parameters
    on fra-eng)."""
    sizes = sizes or SIZES[data.units]
    return EncoderDecoder(
        len(data.src_vocab),
        len(data.tgt_vocab),
        embed_size=sizes.embed,
        hidden_size=sizes.hidden,
        proj_size=sizes.proj,
        dropout=sizes.dropout,
    )


def bahdanau_model(
    data: Seq2SeqData, sizes: Sizes | None = None
) -> AttentionEncoderDecoder:
    """Chapter 3's attention model, the same width as :func:`gru_model` (bidirectional
    encoder of 2 x 128, decoder of 256)."""
    sizes = sizes or SIZES[data.units]
    return AttentionEncoderDecoder(
        len(data.src_vocab),
        len(data.tgt_vocab),
        embed_size=sizes.embed,
        hidden_size=sizes.hidden,
        attention_size=sizes.attention,
        proj_size=sizes.proj,
        dropout=sizes.dropout,
    )


def transformer_model(
    data: Seq2SeqData,
    *,
    norm_first: bool = False,
    sizes: TransformerSizes = TRANSFORMER_SIZES,
) -> Transformer:
    """Chapter 5's Transformer (:data:`TRANSFORMER_SIZES`: width 128, 4 heads,
    feed-forward 512, 2 + 2 layers), with the same dropout as the recurrent models for
    the task's units."""
    return Transformer(
        len(data.src_vocab),
        len(data.tgt_vocab),
        d_model=sizes.d_model,
        num_heads=sizes.num_heads,
        num_layers=sizes.num_layers,
        d_ff=sizes.d_ff,
        dropout=SIZES[data.units].dropout,
        norm_first=norm_first,
    )


def make_schedule(optimizer: torch.optim.Optimizer, plan: Budget):
    """The learning-rate schedule ``plan`` asks for (``None``: a constant rate)."""
    if plan.decay and plan.cooldown:
        raise ValueError(
            "a budget decays either from the warm-up's end (decay=True) "
            f"or over its last steps (cooldown={plan.cooldown}), not both"
        )
    if plan.warmup or plan.decay or plan.cooldown:
        return warmup_linear_schedule(
            optimizer,
            warmup=plan.warmup,
            total=plan.steps,
            decay=plan.decay,
            decay_steps=None if plan.decay else plan.cooldown,
        )
    return None


def train_model(
    name: str,
    build: Callable[[], nn.Module],
    data: Seq2SeqData,
    plan: Budget,
    *,
    profile: Profile,
    seed: int = 0,
    device=None,
    callbacks: Sequence[Callback] = (),
    retrain: bool = False,
) -> tuple[nn.Module, dict]:
    """Train ``build()`` on ``data`` with ``plan``, or load it from the cache if this
    exact experiment (model config, data, budget, seed, profile, training code) was
    trained before. An interrupted training goes on from its last resume point (every
    ``eval_every`` steps)."""
    device = device or choose_device()
    spec = {
        "data": {"name": data.name, **data.info},
        "budget": plan.spec(),
        "profile": profile.name,
    }

    def train(model: nn.Module, resume_path) -> dict:
        # Translation models (those that generate, on a task in words) also record
        # greedy BLEU on the validation split at every evaluation: chapter 6's
        # learning curves.
        translates = data.units in ("words", "subwords") and isinstance(
            model, Generator
        )
        scored = [validation_bleu(model, data)] if translates else []
        optimizer = adam(model.parameters(), lr=plan.lr, betas=plan.betas)
        trainer = Trainer(
            model,
            optimizer=optimizer,
            scheduler=make_schedule(optimizer, plan),
            label_smoothing=plan.label_smoothing,
            device=device,
        )
        history = trainer.fit(
            data.loader(
                "train", plan.batch_size, seed=seed, max_tokens=plan.max_tokens
            ),
            max_steps=plan.steps,
            val_batches=data.loader("val", 256),
            eval_every=plan.eval_every,
            log_every=plan.log_every,
            callbacks=[*scored, *callbacks],
            desc=name,
            resume_path=resume_path,
        )
        return {
            "history": history.to_dict(),
            "seconds": history.seconds,
            "device": str(device),
            "parameters": count_parameters(model),
        }

    model, meta = train_or_load(
        name,
        spec,
        build=build,
        train=train,
        seed=seed,
        retrain=retrain,
        vocabs={"src": data.src_vocab, "tgt": data.tgt_vocab},
    )
    return model.to(device), meta


def validation_bleu(
    model: nn.Module, data: Seq2SeqData, split: str = "val"
) -> Callback:
    """A callback for :meth:`Trainer.fit` that adds the greedy BLEU of ``model`` on
    ``split`` to the history's ``val_scores["bleu"]`` at every evaluation."""

    def score(history) -> None:
        curve = history.val_scores.setdefault("bleu", [])
        if len(curve) < len(history.val_steps):
            curve.append(evaluate_translation(model, data, split)["bleu"])

    return score


def positions_data(profile: Profile) -> Seq2SeqData:
    """Reversal of strings of 5 to 20 letters, for position-labelling (tagging)
    models."""
    return reversal_task(
        **profile.pick(
            smoke=dict(
                n_train=2_000, n_val=100, n_test=200, min_len=5, max_len=20, seed=0
            ),
            full=dict(
                n_train=20_000, n_val=200, n_test=1_000, min_len=5, max_len=20, seed=0
            ),
        )
    )
