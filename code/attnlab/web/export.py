"""The course's trained translation models, for the reader's browser.

:func:`export_for_browser` writes, for one model, what a web page needs to translate
with it: an ONNX graph, the two vocabularies, and a manifest that names every file
with its SHA-256 hash. :func:`onnx_translate` decodes with that graph exactly as the
page does, so that tests can hold the export to PyTorch's greedy decoding.

The graph is served gzip-compressed (``model.onnx.gz``, written deterministically),
because a static host such as GitHub Pages sends ``.onnx`` files as they are: the
page decompresses it itself. The weights stay float32, so the browser's numbers are
PyTorch's to float32 rounding (float32 weights compress little: under a tenth).

The GRU and the Transformer are exported as one graph over a batch of whole prefixes
(``decoder: "prefix"`` in the manifest):
``(src (B, S), src_len (B,), tgt_in (B, T)) -> logits (B, T, V)``, plus the attention
weights the model has. Greedy decoding calls it once per output word, with the words
written so far (B = 1), and reads the last position; beam search calls it once a step
with each live hypothesis as a row (the source repeated). Recomputing the prefix costs
little for sentences this short, and the page keeps no state between calls.

Bahdanau's decoder is a loop over target positions, which the exporter would unroll to
a fixed length; so its graph is one step of the decoder instead (``decoder:
"step"``): ``(src (B, S), src_len (B,), prev (B,), hidden (B, H), started (B,)) ->
logits (B, V), next_hidden (B, H), attention (B, S)``. The page keeps each
hypothesis's ``hidden``; a row with ``started`` 0 begins from the encoder's summary
(the decoder's first state), whatever ``hidden`` holds. The encoder runs again at every
step, which costs little next to a decoder step over the vocabulary.

The Transformer returns every layer's and head's weights, stacked by layer after the
batch: encoder (B, L, h, S, S), decoder self-attention (B, L, h, T, T), cross-attention
(B, L, h, T, S); and it takes a fourth input, ``head_mask`` (3, L, h), 1 for each head
on and 0 for each head switched off (:mod:`attnlab.infer.heads`; all ones: the model as
trained).

Shapes: B hypotheses, S source length, T prefix length, V target vocabulary, H the
decoder state's width, L layers, h heads.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import inspect
import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attnlab.core.files import atomic_path, atomic_write_text
from attnlab.data.corpus import detokenize, tokenize
from attnlab.data.vocab import Vocab
from attnlab.infer import heads
from attnlab.infer.decoding import Translation, translate
from attnlab.infer.inspection import ATTENTION_KINDS
from attnlab.models.bahdanau import AttentionEncoderDecoder, AttentionState
from attnlab.models.rnn import EncoderDecoder
from attnlab.models.transformer import Transformer

FORMAT = 4  # the manifest's format; a page refuses a manifest it does not know
MODEL_FILE = "model.onnx.gz"  # the graph as served (gzip); see the module's docstring
VOCAB_FILES = {"src": "src-vocab.json", "tgt": "tgt-vocab.json"}
# Exactly the files a manifest lists, and with it all that the site copies of an export.
FILES = (MODEL_FILE, *VOCAB_FILES.values())
# What the website calls each kind of model (the manifest carries it to the page).
TITLES = {
    "gru": "GRU encoder-decoder (chapter 2)",
    "bahdanau": "Bahdanau attention (chapter 3)",
    "transformer": "Transformer (chapter 5)",
}


class ExportError(ValueError):
    """An exported model's folder or manifest is not what a page can use; the message
    says what is wrong and what to do."""


# The page truncates and stops where the library's translate does: its own defaults.
_DEFAULTS = inspect.signature(translate).parameters
MAX_SRC_LEN = _DEFAULTS["max_src_len"].default
MAX_LEN = _DEFAULTS["max_len"].default


class _Step(nn.Module):
    """Bahdanau's decode_step as a graph of plain tensors (see the module's
    docstring)."""

    def __init__(self, model: AttentionEncoderDecoder):
        super().__init__()
        self.model = model

    def forward(self, src, src_len, prev, hidden, started):
        memory = self.model.encode(src, src_len)
        state = torch.where(started[:, None] > 0, hidden, memory.initial_state)
        step = self.model.decode_step(prev, memory, AttentionState(state))
        return step.logits, step.state.hidden, step.attention


class _Prefix(nn.Module):
    """A model's teacher-forced pass as a graph of plain tensors."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        tgt_in: torch.Tensor,
        head_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        if isinstance(self.model, Transformer):
            if head_mask is None:
                head_mask = heads.all_on(self.model)
            with heads.heads_off(self.model, head_mask):
                out = self.model(
                    src=src, src_len=src_len, tgt_in=tgt_in, need_weights=True
                )
            layers = out.layers
            return (
                out.logits,
                torch.stack(layers.encoder, dim=1),
                torch.stack(layers.decoder_self, dim=1),
                torch.stack(layers.cross, dim=1),
            )
        out = self.model(src=src, src_len=src_len, tgt_in=tgt_in)
        return (out.logits,) if out.attention is None else (out.logits, out.attention)


@dataclass(frozen=True)
class Layout:
    """What one exported graph takes and returns."""

    kind: str  # "gru", "bahdanau" or "transformer"
    inputs: tuple[str, ...]  # the graph's input names
    outputs: tuple[str, ...]  # the graph's output names, logits first
    decoder: str = "prefix"  # "prefix": a batch of whole prefixes; "step": one step


PREFIX_INPUTS = ("src", "src_len", "tgt_in")  # what a prefix graph takes
STEP_INPUTS = ("src", "src_len", "prev", "hidden", "started")  # a step graph


def layout_of(model: nn.Module) -> Layout:
    if isinstance(model, Transformer):
        return Layout(
            "transformer",
            (*PREFIX_INPUTS, "head_mask"),
            ("logits", "encoder", "decoder_self", "cross"),
        )
    if isinstance(model, AttentionEncoderDecoder):
        return Layout(
            "bahdanau", STEP_INPUTS, ("logits", "next_hidden", "attention"), "step"
        )
    if isinstance(model, EncoderDecoder):
        return Layout("gru", PREFIX_INPUTS, ("logits",))
    raise TypeError(
        f"no browser export for {type(model).__name__}: export takes the "
        "course's EncoderDecoder, AttentionEncoderDecoder or Transformer"
    )


def hidden_size(model: AttentionEncoderDecoder) -> int:
    """The width of Bahdanau's decoder state."""
    return model.decoder.cell.hidden_size


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_onnx(model: nn.Module, path: Path) -> Layout:
    """Write ``model``'s graph to ``path``, one self-contained ``.onnx`` file."""
    layout = layout_of(model)
    model = model.cpu().eval()
    # Traced on a batch of two (one sentence twice, as beam search feeds it), so that
    # nothing of a batch of one is taken for a constant.
    src = torch.tensor([[4, 5, 6, 2]] * 2)
    src_len = torch.tensor([src.shape[1]] * 2)
    # Which axes vary: B, S and T.
    axes = {
        "src": {0: "B", 1: "S"},
        "src_len": {0: "B"},
        "tgt_in": {0: "B", 1: "T"},
        "prev": {0: "B"},
        "hidden": {0: "B"},
        "started": {0: "B"},
        "logits": {0: "B", 1: "T"},
        "next_hidden": {0: "B"},
        "attention": {0: "B", 1: "T", 2: "S"},
        "encoder": {0: "B", 3: "S", 4: "S"},
        "decoder_self": {0: "B", 3: "T", 4: "T"},
        "cross": {0: "B", 3: "T", 4: "S"},
    }
    if layout.decoder == "step":
        # one row started, one not: both branches of the first state are traced
        hidden = torch.zeros(2, hidden_size(model))
        example = (src, src_len, torch.tensor([1, 4]), hidden, torch.tensor([0.0, 1.0]))
        wrapper = _Step(model)
        axes.update(logits={0: "B"}, attention={0: "B", 1: "S"})
    else:
        tgt_in = torch.tensor([[1, 4, 4], [1, 5, 5]])
        example = (src, src_len, tgt_in)
        if "head_mask" in layout.inputs:
            example += (heads.all_on(model),)
        wrapper = _Prefix(model)
    # (the head mask is the same for every batch: no axis of it varies)
    dynamic = {n: axes[n] for n in (*layout.inputs, *layout.outputs) if n in axes}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The legacy exporter traces the Python code once: the one branch it sees is the
        # one a single sentence always takes (no padding to pack). It warns about both.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            example,
            str(tmp),
            input_names=list(layout.inputs),
            output_names=list(layout.outputs),
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    return layout


def export_for_browser(
    model: nn.Module,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    folder: Path,
    *,
    name: str,
    profile: str,
    test_bleu: float | None = None,
    max_len: int = MAX_LEN,
) -> Path:
    """Write ``model.onnx.gz``, ``src-vocab.json``, ``tgt-vocab.json`` and
    ``manifest.json`` under ``folder / name``; returns the manifest's path."""
    out = Path(folder) / name
    out.mkdir(parents=True, exist_ok=True)
    # The plain graph is written to a scratch folder; only its gzip is kept.
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as scratch:
        plain = Path(scratch) / "model.onnx"
        layout = export_onnx(model, plain)
        graph = plain.read_bytes()
    with atomic_path(out / MODEL_FILE) as tmp:
        # mtime=0: the same graph always gives the same bytes (and hash)
        tmp.write_bytes(gzip.compress(graph, compresslevel=9, mtime=0))
    for side, vocab in (("src", src_vocab), ("tgt", tgt_vocab)):
        tokens = [vocab.itos[i] for i in range(len(vocab))]
        atomic_write_text(
            out / VOCAB_FILES[side], json.dumps(tokens, ensure_ascii=False)
        )
    files = list(FILES)
    manifest = {
        "format": FORMAT,
        "name": name,
        "model": type(model).__name__,
        "kind": layout.kind,
        "title": TITLES[layout.kind],
        "profile": profile,
        "outputs": list(layout.outputs),
        # (kinds, layers, heads) of the graph's head_mask input; None: it has none
        "head_mask": (
            list(heads.mask_shape(model)) if "head_mask" in layout.inputs else None
        ),
        # the kinds of attention whose every layer the graph outputs, as the page
        # labels them (the Transformer's)
        "attention_kinds": [
            kind.to_dict() for kind in ATTENTION_KINDS if kind.output in layout.outputs
        ],
        "graph": MODEL_FILE,
        "vocabularies": VOCAB_FILES,
        "decoder": layout.decoder,
        # the size of a step graph's hidden state (None for a prefix graph)
        "hidden_size": hidden_size(model) if layout.decoder == "step" else None,
        "max_len": max_len,
        "max_src_len": MAX_SRC_LEN,
        "test_bleu": test_bleu,
        "special": {
            "pad": tgt_vocab.pad_id,
            "bos": tgt_vocab.bos_id,
            "eos": tgt_vocab.eos_id,
            "unk": src_vocab.unk_id,
        },
        "files": {
            file: {"sha256": sha256(out / file), "bytes": (out / file).stat().st_size}
            for file in files
        },
    }
    # What the page checks after decompressing (a server may also have decompressed it).
    manifest["files"][MODEL_FILE].update(
        content_sha256=hashlib.sha256(graph).hexdigest(), content_bytes=len(graph)
    )
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    for file in [*files, "manifest.json"]:
        (out / file).chmod(0o644)  # a web server serves them: readable by all
    return out / "manifest.json"


def load_manifest(folder: Path) -> dict:
    """The manifest of an exported model, with its file list and every file's hash
    checked: it must name exactly :data:`FILES` (so no absolute or ``..`` path can reach
    the site)."""
    folder = Path(folder)
    again = "export the model again (run its chapter)"
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(
            f"{folder}: no readable manifest.json ({exc}); " + again
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else manifest
        raise ExportError(
            f"{folder}: manifest format {found!r}, expected {FORMAT}; " + again
        )
    if (manifest.get("graph"), manifest.get("vocabularies")) != (
        MODEL_FILE,
        VOCAB_FILES,
    ):
        raise ExportError(
            f"{folder}: the manifest does not name {MODEL_FILE} as its "
            f"graph and {VOCAB_FILES} as its vocabularies; {again}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or sorted(files) != sorted(FILES):
        named = sorted(files) if isinstance(files, dict) else files
        raise ExportError(
            f"{folder}: the manifest names the files {named!r}, not "
            f"exactly {sorted(FILES)}; {again}"
        )
    for file, info in files.items():
        if not (folder / file).is_file():
            raise ExportError(f"{folder / file} is missing; {again}")
        if not isinstance(info, dict) or sha256(folder / file) != info.get("sha256"):
            raise ExportError(
                f"{folder / file}: its SHA-256 does not match the manifest; {again}"
            )
    return manifest


def load_session(folder: Path):
    """An exported model, ready to decode:
    ``(session, manifest, src_vocab, tgt_vocab)``, with every file checked against the
    manifest (``onnxruntime`` needed)."""
    import onnxruntime

    folder = Path(folder)
    manifest = load_manifest(folder)
    graph = gzip.decompress((folder / MODEL_FILE).read_bytes())
    expected = manifest["files"][MODEL_FILE]["content_sha256"]
    if hashlib.sha256(graph).hexdigest() != expected:
        raise ExportError(
            f"{folder / MODEL_FILE}: the decompressed graph does not "
            "match its SHA-256 in the manifest"
        )
    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    vocabs = [
        json.loads((folder / VOCAB_FILES[side]).read_text(encoding="utf-8"))
        for side in ("src", "tgt")
    ]
    return session, manifest, *vocabs


def onnx_translate(
    session,
    manifest: dict,
    src_vocab: list[str],
    tgt_vocab: list[str],
    sentence: str,
    *,
    top_k: int = 5,
    head_mask=None,
) -> Translation:
    """Greedy decoding with an exported graph (an ``onnxruntime.InferenceSession``),
    step by step as the page does it: the same
    :class:`~attnlab.infer.decoding.Translation` as
    :func:`~attnlab.infer.decoding.translate`, with every layer's weights (``layers``)
    where the graph gives them. ``head_mask`` (3, L, h): the Transformer's heads to
    switch off (0), as :func:`attnlab.infer.heads.heads_off` takes it."""
    import numpy as np

    tokens = tokenize(sentence)
    if not tokens:
        raise ValueError("cannot translate an empty sentence")
    truncated = len(tokens) > manifest["max_src_len"]
    tokens = tokens[: manifest["max_src_len"]]
    index = {token: i for i, token in enumerate(src_vocab)}
    special = manifest["special"]
    ids = [index.get(t, special["unk"]) for t in tokens] + [special["eos"]]
    src = np.array([ids], dtype=np.int64)
    src_len = np.array([len(ids)], dtype=np.int64)
    prefix, written = [special["bos"]], []
    step_graph = manifest["decoder"] == "step"
    hidden = np.zeros((1, manifest["hidden_size"] or 0), dtype=np.float32)
    rows = []  # a step graph's weights, step by step
    # A graph takes the inputs it uses: the GRU's never reads src_len (one sentence has
    # no padding), and the exporter leaves it out.
    inputs = [i.name for i in session.get_inputs()]
    outputs, steps, probs, candidates = None, 0, [], []
    # The Transformer's heads, all on unless ``head_mask`` (3, L, h) switches some off.
    mask = None
    if manifest["head_mask"] is not None:
        mask = np.ones(manifest["head_mask"], dtype=np.float32)
        if head_mask is not None:
            mask = np.asarray(head_mask, dtype=np.float32).reshape(mask.shape)
    for _ in range(manifest["max_len"]):
        steps = len(prefix)
        feeds = {
            "src": src,
            "src_len": src_len,
            "tgt_in": np.array([prefix], dtype=np.int64),
            "head_mask": mask,
            "prev": np.array([prefix[-1]], dtype=np.int64),
            "hidden": hidden,
            "started": np.array([float(steps > 1)], dtype=np.float32),
        }
        outputs = session.run(None, {name: feeds[name] for name in inputs})
        if step_graph:
            logits, hidden, attention = outputs
            rows.append(attention[0])
            logits = logits[0].astype(np.float64)
        else:
            logits = outputs[0][0, steps - 1].astype(np.float64)
        distribution = np.exp(logits - logits.max())
        distribution /= distribution.sum()
        token = int(logits.argmax())
        probs.append(float(distribution[token]))
        best = np.argsort(-distribution, kind="stable")[: min(top_k, len(tgt_vocab))]
        candidates.append([(tgt_vocab[i], float(distribution[i])) for i in best])
        if token == special["eos"]:
            break
        written.append(token)
        prefix.append(token)
    # As the library's translate: <pad> and <bos>, should a model write them, are not
    # words.
    words = [tgt_vocab[i] for i in written if i not in (special["pad"], special["bos"])]
    # One row per step taken (the step that wrote <eos> included), as PyTorch's
    # greedy decoding reports them.
    weights = {"attention": np.stack(rows)} if step_graph else {}
    for name, value in zip(manifest["outputs"][1:], outputs[1:] * (not step_graph)):
        value = value[0]  # the one sentence of the batch
        if name == "attention":
            value = value[:steps]  # (T, S)
        elif name == "decoder_self":
            value = value[:, :, :steps, :steps]
        elif name == "cross":
            value = value[:, :, :steps]
        weights[name] = value
    # The map a translation shows: Bahdanau's weights, or the Transformer's last
    # cross-attention averaged over its heads (as its decode_step reports it).
    attention = (
        weights["attention"]
        if "attention" in weights
        else weights["cross"][-1].mean(0)
        if "cross" in weights
        else None
    )
    return Translation(
        source=tokens,
        tokens=words,
        text=detokenize(words),
        probs=probs,
        candidates=candidates,
        unknown=[t for t in tokens if t not in index],
        truncated=truncated,
        attention=(
            torch.from_numpy(np.ascontiguousarray(attention))
            if attention is not None
            else None
        ),
        layers={k: v for k, v in weights.items() if k != "attention"},
    )


def browser_dir() -> Path:
    """Where the chapters leave their exported models for the book's build to publish:
    ``<build dir>/browser`` (see :func:`attnlab.core.runtime.build_dir`)."""
    from attnlab.core.runtime import build_dir

    return build_dir() / "browser"


def publish(
    model: nn.Module, data, *, name: str, profile: str, test_bleu: float | None
) -> Path | None:
    """Export a chapter's trained fra-eng model for the website: the book's build
    copies :func:`browser_dir` into the site (``_static/models``); nothing here is
    committed.

    The exporter needs the ``onnx`` package, which the book's requirements install and
    Colab lacks; without it nothing is written (the website's build test then finds no
    models) and ``None`` is returned, with a line saying why.
    """
    if importlib.util.find_spec("onnx") is None:
        print(
            f"{name}: not exported for the website (no onnx package here; the "
            "book's build installs it)"
        )
        return None
    return export_for_browser(
        model,
        data.src_vocab,
        data.tgt_vocab,
        browser_dir(),
        name=name,
        profile=profile,
        test_bleu=test_bleu,
    )
