"""The package's map: every module in one layer, imports flowing one way, widgets only at the top.

The layers are read from the package docstring, which is what a newcomer reads.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import attnlab

PACKAGE = Path(attnlab.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def layers() -> list[tuple[str, set[str]]]:
    """The diagram of the package docstring: (layer, modules) from the top down."""
    diagram = attnlab.__doc__.split("::")[1].split("One line a module")[0]
    found: list[tuple[str, set[str]]] = []
    for line in diagram.splitlines():
        text = line.split("(")[0].replace("|", " ")
        words = [word.strip(",") for word in text.split()]
        if not words:
            continue
        if len(text) - len(text.lstrip()) == 4:         # a layer: its name, then its modules
            found.append((words[0], set(words[1:])))
        else:                                            # more modules of the layer above
            found[-1][1].update(words)
    return found


def imports(module: str) -> set[str]:
    """The attnlab modules ``module`` imports (relative imports), and its other top-level ones."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found |= {alias.name for alias in node.names if alias.name != "__version__"}
            elif node.module:
                found.add("external:" + node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found |= {"external:" + alias.name.split(".")[0] for alias in node.names}
    return found


def test_the_docstring_places_every_module_once():
    placed = [name for _, names in layers() for name in names]
    assert [layer for layer, _ in layers()] == ["foundations", "data", "models", "training",
                                                "evaluation", "presentation"]
    assert sorted(placed) == MODULES, "every module in exactly one layer of the diagram"
    described = re.findall(r"^- ``(\w+)``:", attnlab.__doc__, flags=re.M)
    assert sorted(described) == MODULES, "and described in one line"


def test_imports_flow_one_way():
    rank = {name: i for i, (_, names) in enumerate(layers()) for name in names}
    upward = [(module, other) for module in MODULES for other in imports(module)
              if other in rank and rank[other] > rank[module]]
    assert not upward, f"modules importing from a layer below them: {upward}"


def test_only_presentation_uses_widgets_and_figures():
    presentation = dict(layers())["presentation"]
    for module in MODULES:
        external = {name.split(":")[1] for name in imports(module) if name.startswith("external:")}
        if module not in presentation:
            assert not external & {"ipywidgets", "matplotlib", "IPython"}, module
    assert "external:ipywidgets" in imports("widgets") and "external:matplotlib" in imports("plots")


def test_every_module_has_its_test_file():
    tests = Path(__file__).parent
    missing = [module for module in MODULES if not (tests / f"test_{module}.py").is_file()]
    assert not missing, f"modules without tests/test_<module>.py: {missing}"


def test_ruff_passes_and_the_library_fits_88_columns():
    """ruff, configured in pyproject.toml: pyflakes and pycodestyle everywhere, and 88 columns
    for the library, whose code the book shows."""
    import subprocess
    import sys

    root = PACKAGE.parents[1]
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise",
                             "code", "tests", "benchmarks", "book"], cwd=root,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
