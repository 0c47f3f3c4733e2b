"""Checkpoints and the model cache.

A checkpoint holds a model's weights, the configuration that rebuilds it, the
vocabularies it was trained with and free-form metadata (training history,
time). It is written atomically and read with ``torch.load(weights_only=True)``.

Models are rebuilt from a checkpoint by class name and ``config``, which
:func:`attnlab.models.contract.register` records; the course's model modules are
imported here, so their classes are always known.

:func:`train_or_load` caches a trained model under a hash of everything that
determines it (settings, seed and the library code that trains it), so a later
chapter reuses what an earlier one trained, and retrains (same seed, same
weights) when the cache is empty or that code has changed. An interrupted
training leaves a resume point beside the cache entry and goes on from it when
run again. Two processes asking for the same entry at once (two kernels on one
folder) take turns: one trains, the other waits and loads what it saved.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attnlab import __version__
from attnlab.core.files import atomic_path, exclusive
from attnlab.core.runtime import build_dir, seed_everything
from attnlab.data.vocab import Vocab
from attnlab.models import bahdanau, rnn, selfattention, transformer  # noqa: F401 (registering)
from attnlab.models.contract import MODELS

FORMAT = "attnlab-checkpoint-1"


class CheckpointError(RuntimeError):
    """A checkpoint is unreadable or does not fit the model; the message says how."""


def _config_of(model: nn.Module) -> dict:
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{type(model).__name__} has no dict `config` "
            "of its constructor's arguments, "
            "so a checkpoint could not rebuild "
            "it (decorate the class "
            "with attnlab.models.contract.register)"
        )
    return config


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    vocabs: dict[str, Vocab] | None = None,
    meta: dict | None = None,
) -> Path:
    """Write weights, config, vocabularies and metadata to ``path`` atomically."""
    state = {
        "format": FORMAT,
        "model": type(model).__name__,
        "config": _config_of(model),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "vocabs": {name: vocab.to_dict() for name, vocab in (vocabs or {}).items()},
        "meta": json.loads(json.dumps(meta or {}, default=float)),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


@dataclass
class Checkpoint:
    model: nn.Module
    vocabs: dict[str, Vocab]
    meta: dict


def _read(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # torch raises several types for truncated or foreign files
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a readable checkpoint "
            f"({type(exc).__name__}: {exc}); delete it "
            "and train again"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an attnlab checkpoint (format {FORMAT})")
    return state


def load_weights(
    model: nn.Module, state_dict: dict, *, origin: str = "checkpoint"
) -> None:
    """Load ``state_dict`` into ``model``, explaining any missing, extra or mis-shaped
    tensors."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    extra = sorted(set(state_dict) - set(own))
    shapes = [
        f"{k}: model {tuple(own[k].shape)} vs {origin} {tuple(state_dict[k].shape)}"
        for k in sorted(set(own) & set(state_dict))
        if own[k].shape != state_dict[k].shape
    ]
    if missing or extra or shapes:
        problems = []
        if missing:
            problems.append(f"missing from {origin}: {', '.join(missing[:5])}")
        if extra:
            problems.append(f"not in the model: {', '.join(extra[:5])}")
        if shapes:
            problems.append("shape mismatch: " + "; ".join(shapes[:5]))
        raise CheckpointError(
            f"the {origin} does not "
            f"match {type(model).__name__} "
            f"({' | '.join(problems)}); was it saved "
            "from another configuration?"
        )
    model.load_state_dict(state_dict)


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module | None = None,
    device: torch.device | str = "cpu",
) -> Checkpoint:
    """Read a checkpoint. Without ``model``, rebuild it from the registered class and
    config; with one, check that its class and config match before loading the
    weights."""
    path = Path(path)
    state = _read(path)
    if model is None:
        cls = MODELS.get(state["model"])
        if cls is None:
            raise CheckpointError(
                f"{path} holds a {state['model']}, "
                "which is not a registered model class "
                "(a model of your own: import "
                "its module first)"
            )
        model = _rebuild(cls, state["config"], path)
    elif type(model).__name__ != state["model"] or _config_of(model) != state["config"]:
        raise CheckpointError(
            f"{path} holds a {state['model']} with config "
            f"{state['config']}, not a {type(model).__name__} "
            f"with config {_config_of(model)}"
        )
    load_weights(model, state["state_dict"], origin=f"checkpoint {path.name}")
    vocabs = {name: Vocab.from_dict(v) for name, v in state["vocabs"].items()}
    return Checkpoint(model.to(device), vocabs, state["meta"])


def _rebuild(cls: type, config: object, path: Path) -> nn.Module:
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path}: its config is not a dict of "
            f"{cls.__name__}'s arguments; delete it and train again"
        )
    accepted = inspect.signature(cls).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
    unknown = sorted(set(config) - set(accepted)) if not takes_any else []
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise CheckpointError(
            f"{path}: its config has {names}, "
            f"which {cls.__name__} does not take (saved by another "
            "version of attnlab?): delete it and train again, or "
            "load it with the attnlab version that saved it"
        )
    try:
        return cls(**config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: {cls.__name__} cannot be rebuilt from its "
            f"config ({exc}); delete it and train again"
        ) from None


def spec_hash(spec: dict) -> str:
    """A short hash of a JSON-able description (model, data and training settings)."""
    text = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# The subpackages whose code determines a trained model's weights: the foundations, the
# building blocks, data, models, training and the shared experiments' settings. A cached
# model is keyed by all of their code, so editing any module in them, or adding one,
# retrains; editing decoding, measurement or presentation code never does. The layers
# contract (pyproject.toml) keeps these subpackages from importing the others, but for
# the experiments' BLEU curves, which are measured during training and change no weight.
TRAINING_CODE = ("core", "nn", "data", "models", "train", "recipes")
# The subpackage that turns a corpus into a task's token pairs and vocabularies: it keys
# the data cache (:func:`attnlab.recipes.experiments.fra_eng_data`).
DATA_CODE = ("data",)


def _code_without_docs(source: str) -> str:
    """The syntax tree of ``source`` without docstrings: comments, layout and
    documentation can change without changing the key."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(
                node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
            )
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@functools.lru_cache(maxsize=8)
def code_hash(
    folder: Path = Path(__file__).parents[1], packages: tuple[str, ...] = TRAINING_CODE
) -> str:
    """A short hash of the code of every module in the subpackages ``packages`` (default
    :data:`TRAINING_CODE`) of ``folder`` (this library), docstrings left out."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((folder / package).glob("*.py")):
            code = _code_without_docs(path.read_text("utf-8"))
            digest.update(f"{package}/{path.name}\0{code}\0".encode())
    return digest.hexdigest()[:16]


def models_dir() -> Path:
    return build_dir() / "models"


def train_or_load(
    name: str,
    spec: dict,
    *,
    build: Callable[[], nn.Module],
    train: Callable[[nn.Module, Path], dict],
    vocabs: dict[str, Vocab] | None = None,
    seed: int = 0,
    folder: str | os.PathLike | None = None,
    retrain: bool = False,
) -> tuple[nn.Module, dict]:
    """Return the model ``spec`` describes: from the cache, or built and trained now.

    ``spec`` must contain everything else that determines the trained weights (data and
    training settings, profile); its hash, with the model's class and config, the seed
    and :func:`code_hash`, names the cache file. ``build()`` makes the untrained model;
    ``train(model, resume_path)`` trains it in place, keeping a resume point at
    ``resume_path`` (see :meth:`attnlab.train.training.Trainer.fit`), and returns
    metadata to keep (history, seconds). Both run after seeding with ``seed``. The
    returned metadata has ``from_cache`` set.
    """
    seed_everything(seed)
    model = build()
    key = spec_hash(
        {
            "name": name,
            "model": type(model).__name__,
            "config": _config_of(model),
            "spec": spec,
            "seed": seed,
            "attnlab": __version__,
            "code": code_hash(),
        }
    )
    path = Path(folder) if folder is not None else models_dir()
    path = path / f"{name}-{key}.pt"
    resume_path = path.with_name(f"{path.stem}.resume.pt")
    if path.exists() and not retrain:
        return _cached(path, model, vocabs)
    with exclusive(
        path,
        waiting=f"{path.name}: another process is training this "
        "model; waiting to load what it saves",
    ):
        if path.exists() and not retrain:  # trained by the process we waited for
            return _cached(path, model, vocabs)
        if retrain:
            resume_path.unlink(missing_ok=True)
        meta = dict(train(model, resume_path))
        save_checkpoint(path, model, vocabs=vocabs, meta={"spec": spec, **meta})
        resume_path.unlink(missing_ok=True)
    return model, {**meta, "from_cache": False, "path": str(path)}


def _cached(
    path: Path, model: nn.Module, vocabs: dict[str, Vocab] | None
) -> tuple[nn.Module, dict]:
    checkpoint = load_checkpoint(path, model=model)
    if vocabs is not None and checkpoint.vocabs != vocabs:
        raise CheckpointError(
            f"{path} was trained with other "
            "vocabularies than the data given "
            "now; delete it or pass retrain=True"
        )
    return checkpoint.model, {**checkpoint.meta, "from_cache": True, "path": str(path)}
