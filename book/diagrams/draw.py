"""Draw the book's architecture diagrams as SVG, text kept as text.

    python book/diagrams/draw.py [OUTPUT_FOLDER]     # default: book/diagrams

Each diagram is drawn twice, for the theme's light and dark modes
(``NAME-light.svg``, ``NAME-dark.svg``); a chapter shows the pair with the
classes ``only-light`` and ``only-dark``, and the alt text in ``ALT``. The output
is deterministic (no dates, fixed ids), so the committed files can be checked
against this script. Labels use the course's shape alphabet: B batch, S source
length, T target length, D model width, h heads, d_k key width, V vocabulary.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

HERE = Path(__file__).resolve().parent
SCALE = 1.5

PALETTES = {
    "light": {
        "fg": "#1f2937",
        "muted": "#6b7280",
        "box": "#f3f4f6",
        "encoder": "#dbeafe",
        "decoder": "#ffedd5",
        "attention": "#dcfce7",
        "accent": "#2563eb",
        "warm": "#c2410c",
        "mask": "#fee2e2",
    },
    "dark": {
        "fg": "#e5e7eb",
        "muted": "#9ca3af",
        "box": "#222a36",
        "encoder": "#1e3a5f",
        "decoder": "#4a2c17",
        "attention": "#173a26",
        "accent": "#60a5fa",
        "warm": "#fb923c",
        "mask": "#4c1d1d",
    },
}

ALT = {
    "encoder-decoder": (
        "The RNN encoder-decoder unrolled over time. The encoder, a GRU, reads the source "
        "tokens 'i am cold . <eos>' one at a time; its last state is the context vector c. "
        "The decoder, another GRU, starts from c and also reads c at every step; its inputs "
        "are '<bos> j'ai froid .', the true previous words (teacher forcing), and at each "
        "step its prediction head outputs the next word, 'j'ai froid . <eos>'."
    ),
    "bahdanau-step": (
        "One decoding step of Bahdanau attention. The previous decoder state s_{t-1} is the "
        "query; the encoder states h_1 to h_S are the keys and values. Additive scores "
        "e_tj = v^T tanh(W_q s_{t-1} + W_k h_j), of shape (B, S), go through a masked "
        "softmax to weights alpha_t; their weighted sum of the encoder states is the "
        "context c_t, of shape (B, keys). A GRU cell reads the previous word's embedding "
        "and c_t to give s_t, and the prediction head turns s_t, the embedding and c_t "
        "into logits of shape (B, V)."
    ),
    "attention": (
        "Left: scaled dot-product attention. Q of shape (..., T, d_k) and K of shape "
        "(..., S, d_k) are multiplied into scores (..., T, S), divided by the square root of "
        "d_k, masked (True = may attend), passed through a softmax and multiplied with V "
        "(..., S, d_v) to give (..., T, d_v). Right: multi-head attention. The input "
        "(B, T, D) is projected by W_Q, W_K and W_V, split into h heads of width "
        "d_k = D / h, shape (B, h, T, d_k); scaled dot-product attention runs in every "
        "head; the heads are concatenated back to (B, T, D) and projected by W_O."
    ),
    "transformer-layers": (
        "The Transformer's encoder and decoder layers (post-norm, as in the paper). Each "
        "side starts with token embeddings times the square root of D plus positional "
        "encodings. An encoder layer, repeated N times: self-attention over the source, "
        "with the source padding mask, then add and layer norm, then a feed-forward network, "
        "add and layer norm. A decoder layer, repeated N times: causal self-attention over "
        "the words written so far, with the causal mask (targets are padded on the right, so "
        "it hides their padding from every real word too); add and "
        "norm; cross-attention whose queries come from the decoder and whose keys and values "
        "are the encoder's output, with the source padding mask; add and norm; feed-forward; "
        "add and norm. A final linear layer gives logits of shape (B, T, V)."
    ),
    "kv-cache": (
        "Generating four words, with and without a key/value cache. Without the cache, "
        "step t runs the decoder on all t tokens written so far: the work per step grows "
        "with t. With the cache, step t computes the query, key and value of the new token "
        "only; its query attends over the keys and values kept from earlier steps, and its "
        "own key and value are appended to the cache."
    ),
}


class Canvas:
    """A figure in inch-like coordinates with boxes, arrows and text."""

    def __init__(self, width: float, height: float, palette: dict):
        # Drawn in units of about an inch, printed SCALE times smaller: in a page's text
        # column the labels then come out at a readable size.
        self.fig = plt.figure(figsize=(width / SCALE, height / SCALE))
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_xlim(0, width)
        self.ax.set_ylim(0, height)
        self.ax.axis("off")
        self.p = palette

    def box(
        self,
        x,
        y,
        w,
        h,
        text="",
        fill="box",
        size=10,
        weight="normal",
        edge="fg",
        dashed=False,
        family="sans-serif",
    ):
        """A rounded box centred on (x, y)."""
        self.ax.add_patch(
            FancyBboxPatch(
                (x - w / 2, y - h / 2),
                w,
                h,
                boxstyle="round,pad=0,rounding_size=0.08",
                facecolor=self.p[fill],
                edgecolor=self.p[edge],
                linewidth=1.2,
                linestyle="--" if dashed else "-",
            )
        )
        if text:
            self.text(x, y, text, size=size, weight=weight, family=family)

    def text(
        self,
        x,
        y,
        text,
        size=10,
        color="fg",
        weight="normal",
        ha="center",
        va="center",
        style="normal",
        family="sans-serif",
    ):
        self.ax.text(
            x,
            y,
            text,
            fontsize=size,
            color=self.p[color],
            ha=ha,
            va=va,
            fontweight=weight,
            fontstyle=style,
            family=family,
        )

    def arrow(self, start, end, color="fg", dashed=False, width=1.2, rad=0.0):
        self.ax.add_patch(
            FancyArrowPatch(
                start,
                end,
                arrowstyle="-|>",
                mutation_scale=11,
                color=self.p[color],
                linewidth=width,
                linestyle="--" if dashed else "-",
                connectionstyle=f"arc3,rad={rad}",
                shrinkA=0,
                shrinkB=0,
            )
        )

    def polyline(self, points, color="fg", dashed=False, width=1.2):
        xs, ys = zip(*points)
        self.ax.plot(
            xs,
            ys,
            color=self.p[color],
            linewidth=width,
            linestyle="--" if dashed else "-",
        )

    def save(self, path: Path):
        self.fig.savefig(
            path,
            format="svg",
            transparent=True,
            metadata={"Date": None, "Creator": None},
        )
        plt.close(self.fig)


def encoder_decoder(c: Canvas):
    source = ["i", "am", "cold", ".", "<eos>"]
    inputs = ["<bos>", "j'ai", "froid", "."]
    outputs = ["j'ai", "froid", ".", "<eos>"]
    y_tok, y_cell, y_out = 0.55, 1.75, 3.05
    c.text(2.55, 3.95, "encoder (GRU)", size=11, weight="bold")
    c.text(8.6, 3.95, "decoder (GRU)", size=11, weight="bold")
    xs = [0.6 + 1.0 * i for i in range(len(source))]
    for i, (x, token) in enumerate(zip(xs, source)):
        c.box(x, y_tok, 0.8, 0.45, token, family="monospace", size=9)
        c.box(x, y_cell, 0.8, 0.6, f"$h_{{{i + 1 if i < 4 else 'S'}}}$", fill="encoder")
        c.arrow((x, y_tok + 0.23), (x, y_cell - 0.3))
        if i:
            c.arrow((xs[i - 1] + 0.4, y_cell), (x - 0.4, y_cell))
    c.text(2.6, y_tok - 0.45, "src (B, S)", size=9, color="muted")
    # The context vector.
    cx = 5.85
    c.ax.add_patch(
        plt.Circle(
            (cx, y_cell),
            0.32,
            facecolor=c.p["attention"],
            edgecolor=c.p["accent"],
            linewidth=1.8,
        )
    )
    c.text(cx, y_cell, "$c$", size=13, weight="bold")
    c.text(cx, y_cell - 0.62, "context vector\n(B, hidden)", size=8.5, color="muted")
    c.arrow((xs[-1] + 0.4, y_cell), (cx - 0.32, y_cell), color="accent", width=1.8)
    dx = [6.95 + 1.1 * i for i in range(len(inputs))]
    c.arrow((cx + 0.32, y_cell), (dx[0] - 0.4, y_cell), color="accent", width=1.8)
    for i, x in enumerate(dx):
        c.box(x, y_tok, 0.85, 0.45, inputs[i], family="monospace", size=9)
        c.box(x, y_cell, 0.8, 0.6, f"$s_{{{i + 1 if i < 3 else 'T'}}}$", fill="decoder")
        c.box(
            x, y_out, 0.85, 0.45, outputs[i], family="monospace", size=9, weight="bold"
        )
        c.arrow((x, y_tok + 0.23), (x, y_cell - 0.3))
        c.arrow((x, y_cell + 0.3), (x, y_out - 0.23))
        c.arrow(
            (cx + 0.22, y_cell + 0.22),
            (x - 0.25, y_cell + 0.3),
            color="accent",
            dashed=True,
            width=0.9,
            rad=-0.25,
        )
        if i:
            c.arrow((dx[i - 1] + 0.4, y_cell), (x - 0.4, y_cell))
    for i in range(1, len(dx)):  # teacher forcing: the true word, not the prediction
        c.arrow(
            (dx[i - 1] + 0.3, y_out - 0.23),
            (dx[i] - 0.3, y_tok + 0.23),
            color="warm",
            dashed=True,
            width=0.9,
        )
    c.text(
        8.6,
        y_out + 0.45,
        "prediction head: logits (B, T, V), one word a step",
        size=8.5,
        color="muted",
    )
    c.text(
        8.6,
        y_tok - 0.45,
        "tgt_in (B, T): the true previous words (teacher forcing)",
        size=8.5,
        color="warm",
    )
    c.text(cx - 0.1, y_cell + 0.55, "$c$ at every step", size=8, color="accent")


def bahdanau_step(c: Canvas):
    keys_x = [0.9 + 0.8 * j for j in range(5)]
    y_keys, y, y_low = 4.05, 2.35, 0.8
    for j, x in enumerate(keys_x):
        c.box(
            x, y_keys, 0.62, 0.5, f"$h_{{{j + 1 if j < 4 else 'S'}}}$", fill="encoder"
        )
    c.text(
        0.6,
        y_keys + 0.55,
        "encoder states: keys and values (B, S, keys)",
        size=8.5,
        color="muted",
        ha="left",
    )
    c.box(0.8, y, 1.0, 0.62, "$s_{t-1}$", fill="decoder")
    c.text(0.8, y + 0.55, "query", size=8.5, color="muted")
    c.box(
        3.35,
        y,
        3.5,
        0.95,
        "scores (B, S)\n$e_{tj} = v^\\top\\tanh(W_q s_{t-1} + W_k h_j)$",
        fill="attention",
        size=9,
    )
    c.box(
        6.55,
        y,
        2.0,
        0.95,
        "masked softmax\n$\\alpha_{tj}$ (B, S)",
        fill="attention",
        size=9,
    )
    c.box(
        9.25,
        y,
        2.4,
        0.95,
        "context (B, keys)\n$c_t = \\sum_j \\alpha_{tj} h_j$",
        fill="attention",
        size=9,
    )
    c.arrow((1.3, y), (1.6, y))
    c.arrow((5.1, y), (5.55, y))
    c.arrow((7.55, y), (8.05, y))
    c.arrow((keys_x[2], y_keys - 0.25), (3.0, y + 0.48), color="accent")
    c.text(2.95, 3.3, "$W_k h_j$: once a sentence", size=8, color="accent", ha="left")
    c.arrow((keys_x[-1] + 0.31, y_keys), (9.25, y + 0.48), color="accent", rad=-0.2)
    c.text(7.9, 3.95, "values", size=8, color="accent")
    c.box(6.1, y_low, 2.2, 0.62, "embedding of $y_{t-1}$", size=9)
    c.box(9.25, y_low, 2.0, 0.62, "GRU cell $\\to s_t$", fill="decoder", size=9)
    c.box(11.75, y_low, 1.6, 0.62, "prediction\nhead", size=9)
    c.arrow((9.25, y - 0.48), (9.25, y_low + 0.31))
    c.arrow((7.2, y_low), (8.25, y_low))
    c.arrow((10.25, y_low), (10.95, y_low))
    c.text(11.75, y_low - 0.55, "logits (B, V)", size=8.5, color="muted")
    c.arrow((10.45, y), (11.6, y_low + 0.31), dashed=True, rad=-0.15)
    c.text(
        11.9,
        y + 0.05,
        "$c_t$, $s_t$ and\nthe embedding\nfeed the head",
        size=7.5,
        color="muted",
        ha="left",
    )
    c.polyline(
        [(8.7, y_low - 0.31), (8.7, 0.12), (0.8, 0.12)], color="warm", dashed=True
    )
    c.arrow((0.8, 0.12), (0.8, y - 0.31), color="warm", dashed=True)
    c.text(2.9, 0.3, "$s_t$ is the next step's query", size=8.5, color="warm")


def attention(c: Canvas):
    # Left: scaled dot-product attention, bottom to top.
    x = 1.9
    c.text(2.4, 7.05, "scaled dot-product attention", size=11, weight="bold")
    for bx, label, shape in (
        (1.1, "$Q$", "(…, T, d_k)"),
        (2.5, "$K$", "(…, S, d_k)"),
        (3.9, "$V$", "(…, S, d_v)"),
    ):
        c.box(bx, 0.8, 1.2, 0.75, f"{label}\n{shape}", fill="encoder", size=8.5)
    layers = [
        (2.0, "$QK^\\top$\n(…, T, S)", "box"),
        (3.05, "scale: × 1/√$d_k$", "box"),
        (4.0, "mask\nTrue = may attend", "mask"),
        (5.05, "softmax over S\nweights (…, T, S)", "attention"),
    ]
    for y, label, fill in layers:
        c.box(x, y, 2.5, 0.75 if "\n" in label else 0.55, label, fill=fill, size=9)
    c.arrow((1.1, 1.18), (1.5, 2.0 - 0.38))
    c.arrow((2.5, 1.18), (2.2, 2.0 - 0.38))
    for a, b in (
        (2.0 + 0.38, 3.05 - 0.28),
        (3.05 + 0.28, 4.0 - 0.38),
        (4.0 + 0.38, 5.05 - 0.38),
    ):
        c.arrow((x, a), (x, b))
    c.box(2.9, 6.15, 2.5, 0.75, "weights × V\n(…, T, d_v)", size=9)
    c.arrow((x, 5.05 + 0.38), (2.5, 6.15 - 0.38))
    c.arrow((3.9, 1.18), (3.3, 6.15 - 0.38), rad=0.06)
    # Right: multi-head attention.
    x0 = 8.1
    c.text(x0, 7.05, "multi-head attention", size=11, weight="bold")
    steps = [
        (0.8, "queries, keys, values\n(B, ·, D)", "encoder"),
        (1.9, "$W_Q$, $W_K$, $W_V$\none (D, D) matrix each", "box"),
        (3.0, "split into h heads: (B, h, ·, d_k)\n$d_k$ = D / h", "box"),
        (5.05, "concatenate the heads\n(B, T, D)", "box"),
        (6.15, "$W_O$: (D, D)\noutput (B, T, D)", "box"),
    ]
    for y, label, fill in steps:
        c.box(x0, y, 3.4, 0.75, label, fill=fill, size=9)
    for dx, label in (
        (-1.35, "head 1"),
        (-0.5, "head 2"),
        (0.35, "head 3"),
        (1.35, "head h"),
    ):
        c.box(x0 + dx, 4.0, 0.75, 0.6, label, fill="attention", size=8)
    c.text(x0 + 0.85, 4.0, "…", size=11)
    c.text(
        x0 - 1.9,
        4.0,
        "attention\nin every head,\nat once",
        size=8,
        color="muted",
        ha="right",
    )
    for a, b in ((0.8, 1.9), (1.9, 3.0)):
        c.arrow((x0, a + 0.38), (x0, b - 0.38))
    c.arrow((x0, 3.0 + 0.38), (x0, 4.0 - 0.3))
    c.arrow((x0, 4.0 + 0.3), (x0, 5.05 - 0.38))
    c.arrow((x0, 5.05 + 0.38), (x0, 6.15 - 0.38))


def transformer_layers(c: Canvas):
    def stack(x, title, sublayers, bottom):
        """One side: the embedding, then N layers of (sublayer, add & norm) pairs; returns
        the top of the stack's frame."""
        c.text(x, 7.75, title, size=11, weight="bold")
        c.box(x, 0.5, 3.2, 0.7, bottom, size=8.5)
        y = 1.35  # the stream enters the first layer here
        c.arrow((x, 0.85), (x, y))
        frame_bottom = y - 0.15
        for label, fill, note in sublayers:
            sub, norm = y + 0.55, y + 1.35  # centres of the sublayer and its add & norm
            c.arrow((x, y), (x, sub - 0.28))
            c.box(x, sub, 2.8, 0.55, label, fill=fill, size=9)
            if note:
                c.text(x + 1.75, sub, note, size=7.5, color="warm", ha="left")
            c.arrow((x, sub + 0.28), (x, norm - 0.2))
            c.box(x, norm, 1.6, 0.4, "add & norm", size=8.5)
            # The residual connection: around the sublayer, into the sum.
            c.polyline(
                [(x, y + 0.1), (x - 1.5, y + 0.1), (x - 1.5, norm)],
                color="muted",
                width=1.0,
            )
            c.arrow((x - 1.5, norm), (x - 0.8, norm), color="muted", width=1.0)
            y = norm + 0.2
        frame_top = y + 0.15
        c.ax.add_patch(
            FancyBboxPatch(
                (x - 1.7, frame_bottom),
                3.4,
                frame_top - frame_bottom,
                boxstyle="round,pad=0,rounding_size=0.12",
                facecolor="none",
                edgecolor=c.p["muted"],
                linestyle="--",
                linewidth=1.0,
            )
        )
        c.text(x - 1.6, frame_top - 0.2, "× N", size=10, color="muted", ha="left")
        return y, frame_top

    enc_out, enc_top = stack(
        2.3,
        "encoder layer",
        [
            ("self-attention", "attention", "source\npadding mask"),
            ("feed-forward (D → d_ff → D)", "box", ""),
        ],
        "embedding × √D + positions\nsrc (B, S) → (B, S, D)",
    )
    c.arrow((2.3, enc_out), (2.3, enc_top + 0.35))
    c.text(2.3, enc_top + 0.55, "encoder output (B, S, D)", size=8.5, color="muted")
    dec_out, dec_top = stack(
        8.3,
        "decoder layer",
        [
            (
                "causal self-attention",
                "decoder",
                "causal mask\n(padding: on the right)",
            ),
            ("cross-attention", "attention", "source\npadding mask"),
            ("feed-forward (D → d_ff → D)", "box", ""),
        ],
        "embedding × √D + positions\ntgt_in (B, T) → (B, T, D)",
    )
    c.arrow((8.3, dec_out), (8.3, dec_top + 0.3))
    c.box(8.3, dec_top + 0.55, 2.6, 0.45, "linear → logits (B, T, V)", size=8.5)
    cross = 1.35 + 1.55 + 0.55  # the cross-attention box's centre
    c.arrow(
        (3.7, enc_top + 0.55), (8.3 - 1.42, cross), color="accent", width=1.6, rad=-0.2
    )
    c.text(5.3, 3.2, "keys and values:\nthe encoder's output", size=8.5, color="accent")


def kv_cache(c: Canvas):
    def grid(x0, title, cached):
        c.text(x0 + 1.15, 5.0, title, size=11, weight="bold")
        c.text(x0 + 1.15, 4.55, "positions written so far →", size=8, color="muted")
        for t in range(4):
            y = 3.9 - 0.8 * t
            c.text(x0 - 0.5, y, f"step {t + 1}", size=8.5, color="muted", ha="right")
            for j in range(t + 1):
                computed = j == t or not cached
                c.box(
                    x0 + 0.78 * j,
                    y,
                    0.62,
                    0.5,
                    "q k v" if computed else "k v",
                    fill="decoder" if computed else "box",
                    size=7.5,
                    edge="fg" if computed else "muted",
                    dashed=not computed,
                )
        c.text(x0 + 1.15, 0.55, note[cached], size=8.5, color="muted")

    note = {
        False: "solid: computed at this step;\nstep t recomputes all t words",
        True: "dashed: keys and values from the cache;\nstep t computes the new word only,\n"
        "its query attends over the cache,\nits k and v are appended to it",
    }
    grid(1.3, "without a cache", cached=False)
    grid(6.5, "with a key/value cache", cached=True)


DIAGRAMS = {
    "encoder-decoder": (encoder_decoder, 11.6, 4.25),
    "bahdanau-step": (bahdanau_step, 13.4, 4.85),
    "attention": (attention, 10.2, 7.4),
    "transformer-layers": (transformer_layers, 11.9, 8.1),
    "kv-cache": (kv_cache, 9.8, 5.4),
}


def draw_all(folder: Path) -> list[Path]:
    """Write every diagram in both palettes into ``folder``; the paths written."""
    plt.rcParams.update(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "attnlab",
            "font.family": "sans-serif",
            "mathtext.fontset": "dejavusans",
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (draw, width, height) in DIAGRAMS.items():
        for mode, palette in PALETTES.items():
            canvas = Canvas(width, height, palette)
            draw(canvas)
            path = folder / f"{name}-{mode}.svg"
            canvas.save(path)
            written.append(path)
    return written


if __name__ == "__main__":
    for path in draw_all(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(path)
