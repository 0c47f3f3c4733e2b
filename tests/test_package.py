"""The package's map: each folder a layer, imports flowing one way, figures only in ``view``.

``import-linter`` enforces the layers (``[tool.importlinter]`` in pyproject.toml); these
tests hold the docstring a newcomer reads to the same diagram, and show that the contracts
catch what they are meant to catch.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import attnlab

PACKAGE = Path(attnlab.__file__).parent
ROOT = PACKAGE.parents[1]
SUBPACKAGES = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
MODULES = {
    package: sorted(
        p.stem for p in (PACKAGE / package).glob("*.py") if p.stem != "__init__"
    )
    for package in SUBPACKAGES
}
LINTER = Path(sys.executable).with_name("lint-imports")


def contract_layers() -> list[list[str]]:
    """The layers contract of pyproject.toml, from the top down, siblings together."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"][
        "importlinter"
    ]
    [layers] = [c for c in config["contracts"] if c["type"] == "layers"]
    return [[name.strip() for name in layer.split("|")] for layer in layers["layers"]]


def docstring_layers() -> list[list[str]]:
    """The diagram of the package docstring, from the top down."""
    diagram = attnlab.__doc__.split("::")[1].split("One line a subpackage")[0]
    return [
        [name.strip() for name in line.split("|")]
        for line in diagram.splitlines()
        if line.strip()
    ]


def test_the_folders_are_the_layers_and_the_docstring_draws_them():
    assert [p.name for p in PACKAGE.glob("*.py")] == ["__init__.py"], (
        "every module lives in a layer's folder"
    )
    assert docstring_layers() == contract_layers()
    assert sorted(sum(contract_layers(), [])) == SUBPACKAGES
    # One line a subpackage, naming its modules.
    lines = dict(
        re.findall(
            r"^- ``(\w+)``: (.*?)(?=^- ``|^\n)", attnlab.__doc__, flags=re.M | re.S
        )
    )
    assert sorted(lines) == SUBPACKAGES
    for package, line in lines.items():
        named = re.findall(r"\(([\w, ]+)\)\.?\s*$", line.strip())
        assert named and sorted(named[-1].split(", ")) == MODULES[package], package


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root / "code")}
    return subprocess.run(
        [str(LINTER), "--no-cache"], cwd=root, env=env, capture_output=True, text=True
    )


def test_the_import_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(
        PACKAGE, root / "code" / "attnlab", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", root)
    return root


def _add_line(root: Path, module: str, line: str):
    path = root / "code" / "attnlab" / f"{module}.py"
    source = path.read_text("utf-8")
    marker = "from __future__ import annotations\n"
    assert marker in source
    path.write_text(source.replace(marker, marker + line + "\n", 1), "utf-8")


@pytest.mark.parametrize(
    "module, line, broken",
    [
        # an import from a layer above
        (
            "nn/masks",
            "from attnlab.train import training",
            "attnlab.nn.masks -> attnlab.train.training",
        ),
        # an import between two layers side by side
        (
            "infer/decoding",
            "from attnlab.train import training",
            "attnlab.infer.decoding -> attnlab.train.training",
        ),
        # a figure outside view
        (
            "measure/analysis",
            "import matplotlib",
            "attnlab.measure.analysis -> matplotlib",
        ),
    ],
)
def test_the_contracts_catch_what_they_forbid(tmp_path, module, line, broken):
    root = _copy(tmp_path)
    _add_line(root, module, f"{line}  # noqa")
    result = _lint(root)
    assert result.returncode != 0 and broken in result.stdout, result.stdout


def test_every_module_has_its_test_file():
    tests = Path(__file__).parent
    missing = [
        module
        for modules in MODULES.values()
        for module in modules
        if not (tests / f"test_{module}.py").is_file()
    ]
    assert not missing, f"modules without tests/test_<module>.py: {missing}"


@pytest.mark.parametrize(
    "command", [["check", "--output-format", "concise"], ["format", "--check"]]
)
def test_ruff_passes_and_the_library_fits_88_columns(command):
    """ruff, configured in pyproject.toml (and chapters/ruff.toml): pyflakes,
    pycodestyle and sorted imports everywhere, 88 columns for the library, whose code
    the book shows; and the formatter's layout, the chapters' code cells included."""
    folders = ["code", "tests", "benchmarks", "book", "chapters"]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, *folders],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
