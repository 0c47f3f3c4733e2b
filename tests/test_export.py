"""The browser export: ONNX graphs that decode exactly as PyTorch does (onnxruntime)."""

from __future__ import annotations

import gzip
import hashlib
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from helpers import TOY_SRC, TOY_TGT, assert_transformer_weights

from attnlab.core import runtime
from attnlab.core.runtime import get_profile
from attnlab.infer import decoding
from attnlab.models.bahdanau import AttentionEncoderDecoder, AttentionState
from attnlab.models.rnn import EncoderDecoder
from attnlab.models.transformer import Transformer
from attnlab.recipes import experiments
from attnlab.web import export

SENTENCES = [
    "The cat sat on a mat.",
    "dog ran",
    "A cat, a dog, a mat!",
    "the zebra sat on the moon .",
    "cat " * 60,
]


def _small(kind: str) -> torch.nn.Module:
    runtime.seed_everything(0)
    S, V = len(TOY_SRC), len(TOY_TGT)
    model = {
        "gru": lambda: EncoderDecoder(
            S, V, embed_size=8, hidden_size=16, proj_size=8, dropout=0.0
        ),
        "bahdanau": lambda: AttentionEncoderDecoder(
            S,
            V,
            embed_size=8,
            hidden_size=16,
            attention_size=8,
            proj_size=8,
            dropout=0.0,
        ),
        "transformer": lambda: Transformer(
            S,
            V,
            d_model=16,
            num_heads=2,
            num_layers=2,
            d_ff=32,
            dropout=0.0,
            max_len=64,
        ),
    }[kind]()
    return model.eval()


def _session(manifest_path):
    session, manifest, *vocabs = export.load_session(manifest_path.parent)
    return session, manifest, vocabs


def assert_same_as_pytorch(
    model, session, manifest, vocabs, sentence, src_vocab, tgt_vocab, atol=1e-4
):
    ours = export.onnx_translate(session, manifest, *vocabs, sentence)
    with pytest.warns(UserWarning) if ours.truncated else _nothing():
        theirs = decoding.translate(
            model, sentence, src_vocab, tgt_vocab, max_len=manifest["max_len"]
        )
    assert ours.source == theirs.source and ours.unknown == theirs.unknown
    assert ours.truncated == theirs.truncated
    assert ours.tokens == theirs.tokens and ours.text == theirs.text
    np.testing.assert_allclose(ours.probs, theirs.probs, atol=atol)
    assert [[t for t, _ in step] for step in ours.candidates] == [
        [t for t, _ in step] for step in theirs.candidates
    ]
    np.testing.assert_allclose(
        [[p for _, p in step] for step in ours.candidates],
        [[p for _, p in step] for step in theirs.candidates],
        atol=atol,
    )
    if manifest["kind"] == "gru":
        assert ours.attention is None and theirs.attention is None and not ours.layers
    else:
        np.testing.assert_allclose(
            ours.attention.numpy(), theirs.attention.numpy(), atol=atol
        )
    if manifest["kind"] == "transformer":
        assert_transformer_weights(
            model, src_vocab, tgt_vocab, ours.source, ours.layers, atol
        )
    return ours


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("kind", ["gru", "bahdanau", "transformer"])
def test_exported_graph_decodes_as_pytorch(kind, tmp_path):
    model = _small(kind)
    manifest_path = export.export_for_browser(
        model,
        TOY_SRC,
        TOY_TGT,
        tmp_path,
        name=f"toy-{kind}",
        profile="smoke",
        test_bleu=None,
        max_len=12,
    )
    session, manifest, vocabs = _session(manifest_path)
    assert manifest["kind"] == kind and manifest["max_src_len"] == 50
    assert set(manifest["files"]) == {
        "model.onnx.gz",
        "src-vocab.json",
        "tgt-vocab.json",
    }
    assert sorted(p.name for p in manifest_path.parent.iterdir()) == sorted(
        [*manifest["files"], "manifest.json"]
    )  # no scratch left behind
    for file in [*manifest["files"], "manifest.json"]:  # a web server may read them
        assert (manifest_path.parent / file).stat().st_mode & 0o444 == 0o444
    for sentence in SENTENCES:
        ours = assert_same_as_pytorch(
            model, session, manifest, vocabs, sentence, TOY_SRC, TOY_TGT
        )
    assert ours.truncated and len(ours.source) == 50  # the 60-word sentence
    # Unknown words are listed as the library lists them.
    zebra = export.onnx_translate(session, manifest, *vocabs, SENTENCES[3])
    assert zebra.unknown == ["zebra", "moon"]
    with pytest.raises(ValueError, match="empty"):
        export.onnx_translate(session, manifest, *vocabs, "  \u00a0 ")


def _run_rows(session, feeds):
    """The graph on the whole batch of ``feeds``, and on each row alone."""
    names = [i.name for i in session.get_inputs()]
    batch = session.run(None, {n: feeds[n] for n in names})
    rows = len(feeds["src"])
    shared = {"head_mask"}  # the same for every row
    alone = [
        session.run(
            None, {n: feeds[n] if n in shared else feeds[n][r : r + 1] for n in names}
        )
        for r in range(rows)
    ]
    return batch, alone


@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_a_batch_of_prefixes_is_each_prefix_alone(kind, tmp_path):
    """Beam search's call: one sentence repeated, a different prefix a row. Each row
    of every output is the graph's answer to that prefix alone, and PyTorch's."""
    model = _small(kind)
    manifest_path = export.export_for_browser(
        model, TOY_SRC, TOY_TGT, tmp_path, name=kind, profile="smoke", max_len=12
    )
    session, manifest, _ = _session(manifest_path)
    assert manifest["decoder"] == "prefix"
    prefixes = np.array([[1, 4, 5, 6], [1, 6, 6, 4], [1, 5, 4, 7]], dtype=np.int64)
    src = np.array([[4, 5, 6, 7, 2]] * 3, dtype=np.int64)
    feeds = {"src": src, "src_len": np.array([5] * 3), "tgt_in": prefixes}
    feeds["head_mask"] = np.ones(manifest["head_mask"] or (), dtype=np.float32)
    batch, alone = _run_rows(session, feeds)
    for row, single in enumerate(alone):
        for together, one in zip(batch, single):
            np.testing.assert_allclose(together[row], one[0], atol=1e-5)
    with torch.no_grad():
        theirs = model(
            src=torch.from_numpy(src),
            src_len=torch.tensor([5] * 3),
            tgt_in=torch.from_numpy(prefixes),
        )
    np.testing.assert_allclose(batch[0], theirs.logits.numpy(), atol=1e-4)


def test_bahdanau_s_step_graph_is_its_decode_step_row_by_row(tmp_path):
    """Bahdanau's graph is one decoder step for a batch of hypotheses, each with its
    own previous word and state; a row not yet started begins from the encoder's
    summary. Each row is the graph's answer for that row alone, and decode_step's."""
    model = _small("bahdanau")
    manifest_path = export.export_for_browser(
        model, TOY_SRC, TOY_TGT, tmp_path, name="b", profile="smoke", max_len=12
    )
    session, manifest, _ = _session(manifest_path)
    assert manifest["decoder"] == "step" and manifest["hidden_size"] == 16
    src = np.array([[4, 5, 6, 7, 2]] * 3, dtype=np.int64)
    hidden = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
    feeds = {
        "src": src,
        "src_len": np.array([5] * 3),
        "prev": np.array([1, 6, 4]),
        "hidden": hidden,
        "started": np.array([0.0, 1.0, 1.0], dtype=np.float32),
    }
    batch, alone = _run_rows(session, feeds)
    for row, single in enumerate(alone):
        for together, one in zip(batch, single):
            np.testing.assert_allclose(together[row], one[0], atol=1e-5)
    with torch.no_grad():
        memory = model.encode(torch.from_numpy(src), torch.tensor([5] * 3))
        state = torch.from_numpy(hidden)
        state[0] = memory.initial_state[0]  # the row not started
        step = model.decode_step(
            torch.from_numpy(feeds["prev"]), memory, AttentionState(state)
        )
    logits, next_hidden, attention = batch
    np.testing.assert_allclose(logits, step.logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(next_hidden, step.state.hidden.numpy(), atol=1e-5)
    np.testing.assert_allclose(attention, step.attention.numpy(), atol=1e-5)


def test_a_file_that_does_not_match_its_hash_is_refused(tmp_path):
    manifest_path = export.export_for_browser(
        _small("gru"), TOY_SRC, TOY_TGT, tmp_path, name="toy", profile="smoke"
    )
    vocab = manifest_path.parent / "tgt-vocab.json"
    vocab.write_text(
        vocab.read_text(encoding="utf-8").replace("chat", "chien"), encoding="utf-8"
    )
    with pytest.raises(ValueError, match="tgt-vocab.json: its SHA-256 does not match"):
        export.load_manifest(manifest_path.parent)


def test_the_graph_is_served_compressed_and_the_same_every_time(tmp_path):
    """model.onnx.gz: gzip (a static host sends .onnx files uncompressed), byte for
    byte the same on a second export, its content hash that of the plain graph."""
    first, again = (
        export.export_for_browser(
            _small("transformer"),
            TOY_SRC,
            TOY_TGT,
            tmp_path / run,
            name="toy",
            profile="smoke",
        )
        for run in ("a", "b")
    )
    packed = (first.parent / "model.onnx.gz").read_bytes()
    assert (
        packed[:2] == b"\x1f\x8b"
        and packed == (again.parent / "model.onnx.gz").read_bytes()
    )
    graph = gzip.decompress(packed)
    info = export.load_manifest(first.parent)["files"]["model.onnx.gz"]
    assert info["content_bytes"] == len(graph) > info["bytes"] == len(packed)
    assert info["content_sha256"] == hashlib.sha256(graph).hexdigest()
    ort.InferenceSession(graph, providers=["CPUExecutionProvider"])  # a valid graph


def test_a_graph_that_does_not_match_after_decompressing_is_refused(tmp_path):
    manifest_path = export.export_for_browser(
        _small("gru"), TOY_SRC, TOY_TGT, tmp_path, name="toy", profile="smoke"
    )
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["model.onnx.gz"]["content_sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="decompressed graph does not match"):
        export.load_session(manifest_path.parent)


def test_only_the_course_models_export(tmp_path):
    with pytest.raises(TypeError, match="no browser export for Linear"):
        export.export_onnx(torch.nn.Linear(2, 2), tmp_path / "x.onnx")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gru", "bahdanau", "transformer"])
def test_trained_models_on_the_held_out_sentences(
    kind, tmp_path, fra_eng_dir, monkeypatch
):
    """The smoke profile's trained fra-eng models, on every held-out source sentence:
    the same output tokens as PyTorch's greedy decoding, the weights within 1e-4."""
    monkeypatch.setenv("ATTNLAB_DATA_DIR", str(fra_eng_dir))
    profile = get_profile("smoke")
    data = experiments.fra_eng_data(profile)
    build = {
        "gru": experiments.gru_model,
        "bahdanau": experiments.bahdanau_model,
        "transformer": experiments.transformer_model,
    }[kind]
    model, _ = experiments.train_model(
        f"{kind}-fra-eng",
        lambda: build(data),
        data,
        experiments.budget("fra-eng", profile),
        profile=profile,
        device="cpu",
    )
    model.eval()
    manifest_path = export.export_for_browser(
        model, data.src_vocab, data.tgt_vocab, tmp_path, name=kind, profile="smoke"
    )
    session, manifest, vocabs = _session(manifest_path)
    sources, _ = data.references("test")
    assert len(sources) >= 50
    for source in sources:
        assert_same_as_pytorch(
            model,
            session,
            manifest,
            vocabs,
            " ".join(source),
            data.src_vocab,
            data.tgt_vocab,
        )


def test_publish_writes_under_the_build_folder_or_says_why_not(
    tmp_path, monkeypatch, capsys
):
    data = type("Data", (), {"src_vocab": TOY_SRC, "tgt_vocab": TOY_TGT})()
    manifest = export.publish(
        _small("transformer"), data, name="toy", profile="smoke", test_bleu=1.5
    )
    assert manifest == export.browser_dir() / "toy" / "manifest.json"
    assert export.browser_dir().is_relative_to(tmp_path)  # ATTNLAB_BUILD_DIR
    assert export.load_manifest(manifest.parent)["test_bleu"] == 1.5
    # Where onnx is missing (Colab), the chapter goes on: nothing written, one line.
    real = export.importlib.util.find_spec
    monkeypatch.setattr(
        export.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnx" else real(name, *a),
    )
    assert (
        export.publish(
            _small("gru"), data, name="toy-gru", profile="smoke", test_bleu=None
        )
        is None
    )
    assert "no onnx package" in capsys.readouterr().out
    assert not (export.browser_dir() / "toy-gru").exists()


@pytest.mark.parametrize(
    "files",
    [
        ["model.onnx.gz", "src-vocab.json", "tgt-vocab.json", "../../outside.txt"],
        ["model.onnx.gz", "src-vocab.json", "/etc/hostname"],
        ["model.onnx.gz", "src-vocab.json"],
    ],
)
def test_a_manifest_must_name_exactly_the_export_files(tmp_path, files):
    """No absolute or `..` path, and nothing missing: a manifest that names other files
    is refused before any of them is read or copied."""
    manifest_path = export.export_for_browser(
        _small("gru"), TOY_SRC, TOY_TGT, tmp_path, name="toy", profile="smoke"
    )
    manifest = json.loads(manifest_path.read_text())
    sample = manifest["files"]["src-vocab.json"]
    manifest["files"] = {name: manifest["files"].get(name, sample) for name in files}
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(export.ExportError, match="not exactly"):
        export.load_manifest(manifest_path.parent)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "no readable manifest.json"),
        ("[1, 2]", "manifest format"),
        # the format before this one
        (
            f'{{"format": {export.FORMAT - 1}}}',
            f"manifest format {export.FORMAT - 1}, expected {export.FORMAT}",
        ),
        (
            f'{{"format": {export.FORMAT}, "graph": "model.onnx", "vocabularies": {{}}}}',
            "does not name model.onnx.gz",
        ),
        (
            f'{{"format": {export.FORMAT}, "graph": "model.onnx.gz", "vocabularies": '
            '{"src": "src-vocab.json", "tgt": "tgt-vocab.json"}, "files": "model.onnx.gz"}',
            "not exactly",
        ),
    ],
)
def test_a_malformed_manifest_says_so(tmp_path, text, message):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(export.ExportError, match=message):
        export.load_manifest(tmp_path)


def test_the_site_copies_only_the_files_a_checked_manifest_names(tmp_path, monkeypatch):
    """The book's live_models extension publishes an export's four files and nothing
    else beside them (a stray file, a hidden one), and leaves a bad export out."""
    import sys
    from types import SimpleNamespace

    from helpers import ROOT

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import live_models

    monkeypatch.setenv("ATTNLAB_BUILD_DIR", str(tmp_path / "build"))
    good = export.export_for_browser(
        _small("gru"),
        TOY_SRC,
        TOY_TGT,
        export.browser_dir(),
        name="good",
        profile="smoke",
    ).parent
    (good / "notes.txt").write_text("not for the site")
    (good / ".scratch").write_text("hidden")
    bad = export.export_for_browser(
        _small("gru"),
        TOY_SRC,
        TOY_TGT,
        export.browser_dir(),
        name="bad",
        profile="smoke",
    ).parent
    (bad / "manifest.json").write_text("{broken")
    site = tmp_path / "html"
    app = SimpleNamespace(builder=SimpleNamespace(format="html"), outdir=str(site))
    live_models._publish(app, None)
    models = site / "_static" / "models"
    assert sorted(p.name for p in models.iterdir()) == ["good", "index.json"]
    assert sorted(p.name for p in (models / "good").iterdir()) == sorted(
        [*export.FILES, "manifest.json"]
    )
    assert [
        m["name"] for m in json.loads((models / "index.json").read_text())["models"]
    ] == ["good"]


@pytest.mark.parametrize("kind", ["gru", "bahdanau", "transformer"])
def test_the_manifest_carries_the_title_files_and_kinds_of_attention_the_page_shows(
    tmp_path, kind
):
    from attnlab.infer.inspection import ATTENTION_KINDS

    manifest = json.loads(
        export.export_for_browser(
            _small(kind), TOY_SRC, TOY_TGT, tmp_path, name="toy", profile="smoke"
        ).read_text()
    )
    assert manifest["title"] == export.TITLES[kind]
    assert manifest["graph"] in manifest["files"]
    assert set(manifest["vocabularies"].values()) <= set(manifest["files"])
    shown = [k["name"] for k in manifest["attention_kinds"]]
    # the Transformer's graph outputs every layer of all three kinds; the others none
    assert shown == ([k.name for k in ATTENTION_KINDS] if kind == "transformer" else [])
    for entry in manifest["attention_kinds"]:
        assert entry["output"] in manifest["outputs"]
        assert {entry["rows"], entry["cols"]} <= {"source", "written", "read"}
