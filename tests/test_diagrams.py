"""The book's architecture diagrams: drawn by book/diagrams/draw.py, committed as SVG with
text kept as text, each shown in a chapter in both colour modes with its alt text."""

from __future__ import annotations

import re
import sys

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "book" / "diagrams"))
import draw  # noqa: E402  (book/diagrams/draw.py)

FOLDER = ROOT / "book" / "diagrams"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def test_committed_svgs_are_what_the_script_draws(tmp_path):
    written = draw.draw_all(tmp_path)
    assert {p.name for p in written} == {p.name for p in FOLDER.glob("*.svg")}
    for path in written:
        assert path.read_bytes() == (FOLDER / path.name).read_bytes(), (
            f"{path.name} differs from book/diagrams/draw.py's output: run "
            "python book/diagrams/draw.py"
        )


@pytest.mark.parametrize("name", sorted(draw.DIAGRAMS))
def test_text_stays_text(name):
    """Labels are SVG text (searchable, sharp), not outlines, and no raster is embedded."""
    for mode in draw.PALETTES:
        svg = (FOLDER / f"{name}-{mode}.svg").read_text(encoding="utf-8")
        assert "<image" not in svg
        texts = re.findall(r"<text[^>]*>([^<]+)</text>", svg)
        assert len(texts) >= 8, f"{name}-{mode}: {len(texts)} text elements"


def test_each_mode_uses_its_palette():
    light = (FOLDER / "transformer-layers-light.svg").read_text(encoding="utf-8")
    dark = (FOLDER / "transformer-layers-dark.svg").read_text(encoding="utf-8")
    for key in ("fg", "muted", "accent"):
        assert (
            draw.PALETTES["light"][key] in light
            and draw.PALETTES["light"][key] not in dark
        )
        assert (
            draw.PALETTES["dark"][key] in dark
            and draw.PALETTES["dark"][key] not in light
        )


@pytest.mark.parametrize("name", sorted(draw.DIAGRAMS))
def test_each_diagram_is_shown_with_its_alt_text(name):
    """Shown once, in a chapter, for the light and the dark theme, each with the alt text."""
    sources = {path.stem: path.read_text(encoding="utf-8") for path in CHAPTERS}
    for mode in draw.PALETTES:
        found = [
            stem
            for stem, text in sources.items()
            if f"../book/diagrams/{name}-{mode}.svg" in text
        ]
        assert len(found) == 1, f"{name}-{mode}.svg is shown in {found}"
        text = sources[found[0]]
        block = text[text.index(f"{name}-{mode}.svg") :]
        assert f":class: only-{mode}" in block[:200]
        assert f":alt: {draw.ALT[name]}".replace('"', '\\"') in block[:2000]


def test_alt_text_names_what_the_diagram_shows():
    assert "context vector" in draw.ALT["encoder-decoder"]
    assert "teacher forcing" in draw.ALT["encoder-decoder"]
    assert "causal mask" in draw.ALT["transformer-layers"]
    assert "source padding mask" in draw.ALT["transformer-layers"]
