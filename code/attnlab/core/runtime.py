"""Where a chapter runs: its profile, its device, its seed and its folders.

Two profiles exist. ``full`` (the default) trains real models and gives the
results the book reports. ``smoke`` runs every chapter in well under a minute
on two CPU cores: the same code on tiny data and budgets, for continuous
integration. Choose one with the environment variable ``ATTNLAB_PROFILE``.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

PROFILES = ("full", "smoke")
T = TypeVar("T")


class SettingError(ValueError):
    """A setting (an environment variable or an argument) names what is not there, or a
    folder that cannot be written; the message says what to use instead."""


@dataclass(frozen=True)
class Profile:
    """The active profile. ``pick(smoke=..., full=...)`` chooses a setting by it."""

    name: str

    @property
    def is_smoke(self) -> bool:
        return self.name == "smoke"

    def pick(self, *, smoke: T, full: T) -> T:
        return smoke if self.is_smoke else full


def get_profile(name: str | None = None) -> Profile:
    """The profile named by ``name``, else by ``ATTNLAB_PROFILE``, else ``full``."""
    name = name if name is not None else os.environ.get("ATTNLAB_PROFILE", "full")
    name = name.strip().lower()
    if name not in PROFILES:
        raise SettingError(
            f"unknown profile {name!r} (from ATTNLAB_PROFILE or the argument): "
            f"choose one of {', '.join(PROFILES)}"
        )
    return Profile(name)


def choose_device(prefer: str | None = None) -> torch.device:
    """CUDA if present, then Apple's MPS, else the CPU.

    ``prefer`` (or the environment variable ``ATTNLAB_DEVICE``) overrides the
    choice, e.g. ``"cpu"`` to compare timings; asking for a device that is not
    there is an error rather than a silent fallback.
    """
    prefer = prefer if prefer is not None else os.environ.get("ATTNLAB_DEVICE")
    if prefer:
        try:
            device = torch.device(prefer)
        except RuntimeError:
            raise SettingError(
                f"unknown device {prefer!r} (from ATTNLAB_DEVICE or the "
                "argument): use cpu, cuda, cuda:N or mps, or unset "
                "ATTNLAB_DEVICE to choose the best one here"
            ) from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SettingError(
                f"device {prefer!r} was asked for but CUDA is not "
                "available here: use cpu, or unset ATTNLAB_DEVICE"
            )
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise SettingError(
                f"device {prefer!r} was asked for but Apple MPS is not "
                "available here: use cpu, or unset ATTNLAB_DEVICE"
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def project_root(start: Path | None = None) -> Path | None:
    """The course's root folder (it holds ``_toc.yml``), searched upwards from
    ``start``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "code" / "attnlab").is_dir():
            return folder
    return None


def build_dir() -> Path:
    """Where results and trained models are kept: ``ATTNLAB_BUILD_DIR``, else
    ``<root>/_build``.

    Outside a checkout of the course (e.g. in Colab) it is ``./_build``.
    """
    env = os.environ.get("ATTNLAB_BUILD_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = project_root()
    return (root if root is not None else Path.cwd()) / "_build"


def cache_dir() -> Path:
    """Where downloads are kept: ``ATTNLAB_CACHE_DIR``, else ``~/.cache/attnlab``."""
    env = os.environ.get("ATTNLAB_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "attnlab"
