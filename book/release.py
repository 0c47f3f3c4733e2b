"""The course's version and its releases (standard library only: CI runs it bare).

    python book/release.py version         # print attnlab.__version__
    python book/release.py check [TAG]     # CHANGELOG.md has a section for the version
                                           # and CITATION.cff cites it; with TAG, the
                                           # tag is "v" + the version

The version is defined once, as ``__version__`` in ``code/attnlab/__init__.py``;
``pyproject.toml`` reads it from there. A release: set the version, move the
"Unreleased" entries of ``CHANGELOG.md`` under a new "## [X.Y.Z] - date" heading,
set ``version`` and ``date-released`` in ``CITATION.cff``, commit, then tag ``vX.Y.Z`` and push the tag (the workflow runs ``check`` on it).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INIT = ROOT / "code" / "attnlab" / "__init__.py"
CHANGELOG = ROOT / "CHANGELOG.md"
CITATION = ROOT / "CITATION.cff"
SECTION = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", re.M)


def version() -> str:
    """``attnlab.__version__``, read without importing the package."""
    for node in ast.parse(INIT.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and getattr(node.targets[0], "id", None) == "__version__"
        ):
            return node.value.value
    raise SystemExit(f"{INIT}: no __version__ = '...'")


def released() -> list[str]:
    """The versions CHANGELOG.md has a section for, newest first."""
    return SECTION.findall(CHANGELOG.read_text(encoding="utf-8"))


def problems(tag: str | None = None) -> list[str]:
    found = []
    current = version()
    if not re.fullmatch(r"\d+\.\d+\.\d+", current):
        found.append(f"version {current!r} is not X.Y.Z")
    sections = [v for v, _ in released()]
    if not sections or sections[0] != current:
        found.append(
            f"CHANGELOG.md's newest section is {sections[:1] or 'missing'}, not "
            f"[{current}]"
        )
    cited = re.search(r"^version: (\S+)$", CITATION.read_text(encoding="utf-8"), re.M)
    if cited is None or cited.group(1).strip("'\"") != current:
        found.append(
            f"CITATION.cff's version is {cited and cited.group(1)!r}, not {current}"
        )
    if tag is not None and tag != f"v{current}":
        found.append(f"tag {tag!r} is not v{current} (attnlab.__version__)")
    return found


def main(argv: list[str]) -> int:
    if argv[:1] == ["version"]:
        print(version())
        return 0
    if argv[:1] == ["check"] and len(argv) <= 2:
        found = problems(argv[1] if len(argv) == 2 else None)
        for problem in found:
            print(f"release: {problem}", file=sys.stderr)
        if not found:
            print(f"release: v{version()} is consistent")
        return 1 if found else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
