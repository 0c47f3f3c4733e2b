"""The website's own scripts (book/live/*.mjs) pass ESLint, pinned in book/vendor's lock
and configured in book/vendor/eslint.config.mjs, and ESLint would catch their typical
slips."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT

VENDOR = ROOT / "book" / "vendor"
ESLINT = VENDOR / "node_modules" / "eslint" / "bin" / "eslint.js"
CONFIG = VENDOR / "eslint.config.mjs"


def eslint(root: Path) -> subprocess.CompletedProcess:
    """ESLint on ``root``/book/live, run from ``root`` (its base path)."""
    assert shutil.which("node"), "Node.js is needed to lint book/live/"
    assert ESLINT.is_file(), "ESLint is not installed: run `make vendor`"
    return subprocess.run(
        ["node", str(ESLINT), "--config", str(CONFIG), "--format", "json", "book/live"],
        cwd=root,
        capture_output=True,
        text=True,
    )


def test_the_live_scripts_pass_eslint():
    result = eslint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "slip, rule",
    [
        ("const unusedValue = 1;", "no-unused-vars"),
        ("export function same(a) { return a == 2; }", "eqeqeq"),
        ("export function later() { return notDefinedAnywhere; }", "no-undef"),
        ("var old = 1; export { old };", "no-var"),
    ],
)
def test_eslint_catches_a_slip(tmp_path, slip, rule):
    shutil.copytree(ROOT / "book" / "live", tmp_path / "book" / "live")
    script = tmp_path / "book" / "live" / "tokenize.mjs"
    script.write_text(script.read_text(encoding="utf-8") + "\n" + slip + "\n", "utf-8")
    result = eslint(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    found = {
        (Path(report["filePath"]).name, message["ruleId"])
        for report in json.loads(result.stdout)
        for message in report["messages"]
    }
    assert found == {("tokenize.mjs", rule)}
