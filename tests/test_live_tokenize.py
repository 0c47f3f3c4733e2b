"""The browser's tokenizer (book/live/tokenize.mjs) is attnlab.data.corpus.tokenize, exactly:
both run on the same awkward sentences, the JavaScript one under Node.js."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from helpers import ROOT

from attnlab.data.corpus import detokenize, tokenize

MODULE = ROOT / "book" / "live" / "tokenize.mjs"

AWKWARD = [
    "Hello, World!",
    "C'est l'été… déjà ?!",
    "I'm here; aren't you?",
    # no-break, narrow no-break and thin spaces; soft hyphen and zero-width space
    "Il\u202fa\u00a0dit\u2009: «\u00a0non\u00a0»",
    "soft\u00adhyphen zero\u200bwidth",
    # runs of punctuation, and punctuation inside a word
    "wow!!! ok?..",
    "a.b,c!d?e",
    "...",
    "? ! . ,",
    # upper case beyond ASCII: final sigma, dotted capital I, titlecase digraphs
    "ΟΔΟΣ ΣΑΣ.",
    "ΑΣ.",
    "a Σ.",
    "İstanbul",
    "Ǆ ǅ ǆ",
    "ÉCOLE Straße STRASSE ﬁ",
    # what Python and JavaScript call whitespace differs at the ends
    "  \ufefftab\there\x1c\x85 ",
    "\u2028line\u2029",
    "\u3000wide\u3000",
    "\t\n",
    # other scripts, emoji (outside the 16-bit range), markup shown as text
    "😀 emoji, 中文。",
    "👍🏽 ok!",
    "<script>alert(1)</script>",
    "Ünïcödé ñ",
    "",
    "   ",
    "x\u0307",
    # subword pieces, which detokenize glues back into words
    "tra@@ vail@@ lons !",
    "@@ a@@",
    "end@@",
]


def test_the_browser_tokenizer_is_the_library_one():
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "Node.js is needed to run the browser's tokenizer (make vendor uses it too)"
        )
    script = (
        f"import {{ tokenize, detokenize }} from {json.dumps(MODULE.as_uri())};\n"
        "let data = '';\n"
        "process.stdin.on('data', (d) => (data += d));\n"
        "process.stdin.on('end', () => process.stdout.write(JSON.stringify(\n"
        "  JSON.parse(data).map((t) => [tokenize(t), detokenize(tokenize(t))]))));\n"
    )
    run = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps(AWKWARD),
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    theirs = json.loads(run.stdout)
    ours = [[tokenize(t), detokenize(tokenize(t))] for t in AWKWARD]
    mismatches = [(t, o, j) for t, o, j in zip(AWKWARD, ours, theirs) if o != j]
    assert not mismatches
    assert ours[0][0] == ["hello", ",", "world", "!"]  # the check checks something
