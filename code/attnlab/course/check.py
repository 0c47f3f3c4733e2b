"""Checkers for the write-it exercises: ``check.masked_softmax(my_masked_softmax)``.

Each checker runs the learner's function and the library's on the same inputs (the same
weights too, where there are any), random ones first and then the edge cases, and
returns a :class:`~attnlab.course.checking.Report`: one line on a pass, else the first
failing case, what was expected and what came back, and the likely cause when the answer
is one of the typical mistakes (see :mod:`attnlab.course.checking`).

Shapes use the course's alphabet: B batch, S source length (keys), T target length
(queries), D model width, h heads, d_k = D / h, V vocabulary, k beam width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.course.checking import (
    Case,
    Mismatch,
    Mistake,
    Report,
    compare_tensor,
    randn,
    run,
    with_devices,
)
from attnlab.course.compare import diagonal as _diagonal
from attnlab.data.batching import PairDataset
from attnlab.infer.decoding import greedy_decode as _greedy_decode
from attnlab.infer.decoding import top_candidates
from attnlab.measure.metrics import length_buckets as _length_buckets
from attnlab.models.contract import Step
from attnlab.models.rnn import EncoderDecoder
from attnlab.nn import masks
from attnlab.nn.attention import AdditiveAttention
from attnlab.nn.attention import masked_softmax as _masked_softmax
from attnlab.nn.attention import scaled_dot_product_attention as _sdpa
from attnlab.nn.batched import Batched
from attnlab.nn.multihead import KeyValue, MultiHeadAttention
from attnlab.train.training import masked_cross_entropy

MIN = torch.finfo(torch.float32).min


def _tensor(expected, got, case, *, what, axes=None):
    compare_tensor(expected, got, what=what, axes=axes)


def _seeded(module: nn.Module, seed: int) -> nn.Module:
    """``module`` with weights drawn from N(0, 0.5^2) by its own generator (the
    notebook's random state is left alone), in evaluation mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return module.eval()


# --- chapter 1: teacher forcing ------------------------------------------------------


def _teacher_forcing_reference(targets, *, bos_id, pad_id):
    batch = PairDataset.collate(
        SimpleNamespace(bos_id=bos_id, pad_id=pad_id), [([0], t) for t in targets]
    )
    return batch.tgt_in, batch.tgt_out


def teacher_forcing(function) -> Report:
    """Check ``function(targets, *, bos_id, pad_id) -> (tgt_in, tgt_out)``: target id
    lists (each ending with ``<eos>``) to the decoder's inputs and targets, (B, T)
    each, right-padded with ``pad_id``."""

    def case(name, targets, bos=1, pad=0):
        return Case(
            name,
            lambda d: {
                "targets": [list(t) for t in targets],
                "bos_id": bos,
                "pad_id": pad,
            },
        )

    cases = [
        case("three sentences of different lengths", [[5, 6, 7, 2], [8, 2], [9, 4, 2]]),
        case("one sentence", [[5, 6, 2]]),
        case("sentences of one token (<eos> alone)", [[2], [2]]),
        case("the same lengths, no padding", [[5, 6, 2], [7, 8, 2]]),
        case("other ids: <bos> = 7, <pad> = 9", [[4, 5, 2], [6, 2]], bos=7, pad=9),
    ]

    def compare(expected, got, case):
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Mismatch(
                f"expected a pair (tgt_in, tgt_out); got {type(got).__name__}"
            )
        _tensor(expected[0], got[0], case, what="tgt_in", axes="B T")
        _tensor(expected[1], got[1], case, what="tgt_out", axes="B T")

    def not_shifted(targets, bos_id, pad_id):
        out = _teacher_forcing_reference(targets, bos_id=bos_id, pad_id=pad_id)[1]
        return out, out

    def no_bos(targets, bos_id, pad_id):
        out = _teacher_forcing_reference(targets, bos_id=bos_id, pad_id=pad_id)[1]
        return out.roll(1, dims=1), out

    mistakes = [
        Mistake(
            "the decoder input is the target itself, not shifted: the model would "
            "learn to copy its input. The input is `<bos>` followed by the target "
            "without its last token",
            not_shifted,
        ),
        Mistake(
            "the input is rolled instead of shifted behind `<bos>`: its first "
            "token "
            "must be `<bos>`",
            no_bos,
        ),
    ]
    return run(
        "teacher_forcing",
        function,
        _teacher_forcing_reference,
        cases,
        compare=compare,
        mistakes=mistakes,
        explain=lambda inputs, _expected, got, _case: _explain_forcing(inputs, got),
    )


def _explain_forcing(inputs, got):
    try:
        tgt_in = got[0]
        if tgt_in.shape[1] == max(map(len, inputs["targets"])) + 1:
            return (
                "the decoder input is one position too long: `<bos>` comes first, "
                "and the last token of the target (`<eos>`) is never an input"
            )
        if bool((tgt_in[:, 0] != inputs["bos_id"]).any()):
            return "a decoder input does not start with `<bos>` (`bos_id`)"
    except Exception:
        return None
    return None


# --- the masked token loss (chapter 1) -----------------------------------------------


def _loss_case(name, batch, length, vocab, lengths, pad=0, seed=0):
    def build(device):
        logits = randn(batch, length, vocab, seed=seed, device=device).requires_grad_()
        targets = torch.randint(
            4, vocab, (batch, length), generator=torch.Generator().manual_seed(seed)
        )
        if pad != 0:  # then id 0 is an ordinary word, and occurs
            targets[:, 0] = 0
        for row, n in enumerate(lengths):
            targets[row, n:] = pad
        return {"logits": logits, "targets": targets.to(device), "pad_id": pad}

    return Case(name, build)


def masked_token_loss(function) -> Report:
    """Check ``function(logits, targets, pad_id) -> loss``: the mean cross-entropy over
    the real (not padded) target tokens. logits (B, T, V), targets (B, T), loss ()."""
    cases = with_devices(
        [
            _loss_case(
                "random logits, sentences of 5, 2 and 4 tokens", 3, 5, 9, [5, 2, 4]
            ),
            _loss_case("no padding", 2, 4, 7, [4, 4], seed=1),
            _loss_case("a batch of one", 1, 6, 8, [3], seed=2),
            _loss_case("sentences of one token", 3, 1, 6, [1, 1, 1], seed=3),
            _loss_case("the padding id is 3, not 0", 3, 6, 9, [6, 1, 3], pad=3, seed=4),
        ]
    )

    def compare(expected, got, case):
        if isinstance(got, (float, int)):
            raise Mismatch(
                "expected the loss as a tensor (it must carry a gradient); "
                f"got the {type(got).__name__} {got:.4f}"
            )
        _tensor(expected, got, case, what="the loss")
        if isinstance(got, torch.Tensor) and not got.requires_grad:
            raise Mismatch(
                "the loss has the right value but carries no gradient (was "
                "`.item()`, `.detach()` or `torch.no_grad()` used?)"
            )

    def flat(logits, targets):
        return logits.flatten(0, 1), targets.flatten()

    def per_sentence(logits, targets, pad_id):
        each = F.cross_entropy(
            logits.transpose(1, 2), targets, reduction="none", ignore_index=pad_id
        )  # (B, T)
        real = (targets != pad_id).sum(1).clamp(min=1)
        return (each.sum(1) / real).mean()

    mistakes = [
        Mistake(
            "padded positions are counted in the loss: leave out the targets equal "
            "to `pad_id` (`ignore_index=pad_id`)",
            lambda logits, targets, pad_id: F.cross_entropy(*flat(logits, targets)),
        ),
        Mistake(
            "the padding id is taken to be 0: use `pad_id`",
            lambda logits, targets, pad_id: F.cross_entropy(
                *flat(logits, targets), ignore_index=0
            ),
        ),
        Mistake(
            "the loss is averaged sentence by sentence, then over sentences: the "
            "course averages over all the real tokens of the batch",
            per_sentence,
        ),
        Mistake(
            "the loss is summed, not averaged over the real tokens",
            lambda logits, targets, pad_id: F.cross_entropy(
                *flat(logits, targets), ignore_index=pad_id, reduction="sum"
            ),
        ),
        Mistake(
            "the logits went through a softmax first: cross-entropy takes raw "
            "scores (it applies the log-softmax itself)",
            lambda logits, targets, pad_id: F.cross_entropy(
                *flat(logits.softmax(-1), targets), ignore_index=pad_id
            ),
        ),
    ]
    return run(
        "masked_token_loss",
        function,
        lambda logits, targets, pad_id: masked_cross_entropy(
            logits, targets, pad_id=pad_id
        ),
        cases,
        compare=compare,
        mistakes=mistakes,
    )


# --- chapter 2: one GRU step, greedy decoding ----------------------------------------


def _gru(
    x, h, cell, *, order=(0, 1, 2), swap_z=False, reset_before=False, bias_outside=False
):
    W_r, W_z, W_n = (cell.weight_ih.chunk(3)[i] for i in order)
    U_r, U_z, U_n = (cell.weight_hh.chunk(3)[i] for i in order)
    b_ir, b_iz, b_in = (cell.bias_ih.chunk(3)[i] for i in order)
    b_hr, b_hz, b_hn = (cell.bias_hh.chunk(3)[i] for i in order)
    r = torch.sigmoid(x @ W_r.T + b_ir + h @ U_r.T + b_hr)
    z = torch.sigmoid(x @ W_z.T + b_iz + h @ U_z.T + b_hz)
    if reset_before:
        n = torch.tanh(x @ W_n.T + b_in + (r * h) @ U_n.T + b_hn)
    elif bias_outside:
        n = torch.tanh(x @ W_n.T + b_in + r * (h @ U_n.T) + b_hn)
    else:
        n = torch.tanh(x @ W_n.T + b_in + r * (h @ U_n.T + b_hn))
    return z * n + (1 - z) * h if swap_z else (1 - z) * n + z * h


def gru_step(function) -> Report:
    """Check ``function(x, h, cell) -> h_new``: one step of a GRU from its gate
    equations, with the weights of ``cell`` (an ``nn.GRUCell``). x (B, embed),
    h and h_new (B, hidden)."""

    def case(name, batch, embed, hidden, seed, zero_state=False):
        def build(device):
            cell = _seeded(nn.GRUCell(embed, hidden), seed).to(device)
            h = randn(batch, hidden, seed=seed + 1, device=device)
            return {
                "x": randn(batch, embed, seed=seed + 2, device=device),
                "h": torch.zeros_like(h) if zero_state else h,
                "cell": cell,
            }

        return Case(name, build)

    cases = with_devices(
        [
            case("random input and state", 4, 5, 6, 0),
            case("a batch of one", 1, 3, 4, 1),
            case("the first step (state all zeros)", 3, 5, 6, 2, True),
            case("embed and hidden of one size", 2, 6, 6, 3),
        ]
    )
    mistakes = [
        Mistake(
            "z and 1 - z are swapped: h' = (1 - z) ⊙ n + z ⊙ h, so that z near 1 "
            "keeps the old state",
            lambda x, h, cell: _gru(x, h, cell, swap_z=True),
        ),
        Mistake(
            "the gates' blocks are taken in the wrong order: PyTorch stacks them "
            "as "
            "r, z, n (`W_r, W_z, W_n = cell.weight_ih.chunk(3)`)",
            lambda x, h, cell: _gru(x, h, cell, order=(1, 0, 2)),
        ),
        Mistake(
            "r multiplies h before U_n; in PyTorch's convention (the chapter's) it "
            "multiplies (U_n h + b_hn)",
            lambda x, h, cell: _gru(x, h, cell, reset_before=True),
        ),
        Mistake(
            "b_hn is added outside r ⊙ (...): it belongs inside, "
            "n = tanh(W_n x + b_in + r ⊙ (U_n h + b_hn))",
            lambda x, h, cell: _gru(x, h, cell, bias_outside=True),
        ),
    ]
    return run(
        "gru_step",
        function,
        lambda x, h, cell: cell(x, h),
        cases,
        compare=lambda e, g, c: _tensor(e, g, c, what="the new state", axes="B hidden"),
        mistakes=mistakes,
    )


@dataclass
class _Countdown(Batched):
    src: torch.Tensor  # (B, S)
    src_len: torch.Tensor  # (B,)


@dataclass
class _Written(Batched):
    step: torch.Tensor  # (B,) tokens written so far


class ScriptedTranslator(nn.Module):
    """A model whose answer is known: it writes each source sentence backwards (without
    its ``<eos>``), then ``<eos>``, whatever its inputs were, as long as the decoding
    state is carried from step to step. Honours the Generator contract."""

    def __init__(self, vocab: int = 12, eos_id: int = 2):
        super().__init__()
        self.vocab, self.eos_id = vocab, eos_id
        self.anchor = nn.Parameter(torch.zeros(()))  # so that it has a device

    def encode(self, src, src_len):
        return _Countdown(src, src_len)

    def decode_step(self, prev, memory, state):
        step = torch.zeros_like(memory.src_len) if state is None else state.step
        # backwards, from the last token before <eos>
        position = (memory.src_len - 2 - step).clamp(min=0)
        token = memory.src.gather(1, position[:, None])[:, 0]
        token = torch.where(step >= memory.src_len - 1, self.eos_id, token)
        logits = F.one_hot(token, self.vocab).float() * 5 + self.anchor
        return Step(logits, _Written(step + 1))


def _greedy_reference(model, src, src_len, *, bos_id, eos_id, max_len):
    out = _greedy_decode(
        model, src, src_len, bos_id=bos_id, eos_id=eos_id, max_len=max_len
    )
    return [row[:n] for row, n in zip(out.tokens.tolist(), out.lengths.tolist())]


def _greedy_variant(
    model, src, src_len, *, bos_id, eos_id, max_len, carry=True, feed=True
):
    memory = model.encode(src, src_len)
    prev = torch.full((src.shape[0],), bos_id, dtype=torch.long, device=src.device)
    state, rows = None, [[] for _ in range(src.shape[0])]
    with torch.no_grad():
        for _ in range(max_len):
            step = model.decode_step(prev, memory, state)
            token = step.logits.argmax(-1)
            state = step.state if carry else None
            prev = token if feed else prev
            for row, t in zip(rows, token.tolist()):
                if not row or row[-1] != eos_id:
                    row.append(t)
            if all(row[-1] == eos_id for row in rows):
                break
    return rows


def greedy_decode(function) -> Report:
    """Check ``function(model, src, src_len, *, bos_id, eos_id, max_len)``: greedy
    decoding until each sentence's ``<eos>``, as a list of B id lists (each ending
    with ``<eos>``, or ``max_len`` ids long if it never came). src (B, S), src_len
    (B,)."""

    def scripted(name, rows, max_len=10):
        def build(device):
            ids = [r + [2] for r in rows]
            longest = max(map(len, ids))
            src = torch.tensor(
                [r + [0] * (longest - len(r)) for r in ids], device=device
            )
            return {
                "model": ScriptedTranslator().to(device),
                "src": src,
                "src_len": torch.tensor([len(r) for r in ids], device=device),
                "bos_id": 1,
                "eos_id": 2,
                "max_len": max_len,
            }

        return Case(name, build)

    def trained_free(device):
        model = _seeded(EncoderDecoder(10, 11, 8, 12, dropout=0.0), 0).to(device)
        src = torch.randint(4, 10, (3, 5), generator=torch.Generator().manual_seed(0))
        return {
            "model": model,
            "src": src.to(device),
            "src_len": torch.tensor([5, 4, 2], device=device),
            "bos_id": 1,
            "eos_id": 2,
            "max_len": 7,
        }

    cases = with_devices(
        [
            scripted(
                "three sentences that end at different steps", [[5, 6, 7], [8], [9, 4]]
            ),
            scripted("a batch of one", [[4, 5, 6, 7]]),
            scripted("a sentence whose translation is <eos> alone", [[], [6, 7]]),
            scripted("max_len reached before <eos>", [[4, 5, 6, 7, 8]], max_len=3),
            Case("a real GRU encoder-decoder (random weights)", trained_free),
        ]
    )

    def compare(expected, got, case):
        if isinstance(got, torch.Tensor):
            got = got.tolist()
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            raise Mismatch(
                f"expected a list of {len(expected)} id lists (one a "
                f"sentence); got {type(got).__name__}"
                + (f"of {len(got)}" if isinstance(got, (list, tuple)) else "")
            )
        for b, (e, g) in enumerate(zip(expected, got)):
            g = g.tolist() if isinstance(g, torch.Tensor) else list(g)
            if g != e:
                raise Mismatch(f"sentence {b} should be {e}, got {g}")

    mistakes = [
        Mistake(
            "the decoding state is not carried from one step to the next: pass the "
            "previous step's `state` to `decode_step` (None only at the first "
            "step)",
            lambda **k: _greedy_variant(**k, carry=False),
        ),
        Mistake(
            "the previous token is not fed back: the input of step t is the token "
            "chosen at step t - 1 (`<bos>` only at the first step)",
            lambda **k: _greedy_variant(**k, feed=False),
        ),
    ]
    return run(
        "greedy_decode",
        function,
        _greedy_reference,
        cases,
        compare=compare,
        mistakes=mistakes,
        explain=_explain_greedy,
    )


def _explain_greedy(inputs, expected, got, case):
    eos, max_len = inputs["eos_id"], inputs["max_len"]
    try:
        rows = [list(g.tolist() if isinstance(g, torch.Tensor) else g) for g in got]
    except TypeError:
        return None
    for e, g in zip(expected, rows):
        if g == e[:-1] and e[-1:] == [eos]:
            return "the `<eos>` is left out: keep it as the last id of each sentence"
        if len(g) > max_len:
            return f"a sentence has {len(g)} ids, more than max_len = {max_len}"
        if len(g) > len(e) and g[: len(e)] == e:
            return (
                "a sentence goes on after its `<eos>`: stop each sentence at its "
                "own `<eos>` (and keep the others going)"
            )
        if len(g) < len(e) and g == e[: len(g)]:
            return (
                "a sentence stops before its `<eos>`: does the loop end when the "
                "first sentence ends? It ends when all have"
            )
    return None


# --- chapter 3: additive scores, the masked softmax, the context ---------------------


def _attention_case(name, batch, queries, keys, seed, lengths=None, width=6):
    def build(device):
        layer = _seeded(AdditiveAttention(5, width, 4), seed).to(device)
        return {
            "query": randn(batch, queries, 5, seed=seed, device=device),
            "key": randn(batch, keys, width, seed=seed + 1, device=device),
            "W_q": layer.W_q,
            "W_k": layer.W_k,
            "v": layer.v,
        }

    return Case(name, build)


def _scores_reference(query, key, W_q, W_k, v):
    layer = AdditiveAttention(1, 1, 1)
    layer.W_q, layer.W_k, layer.v = W_q, W_k, v
    return layer.scores(query, layer.project_keys(key))


def additive_scores(function) -> Report:
    """Check ``function(query, key, *, W_q, W_k, v) -> e``: Bahdanau's alignment scores
    e_tj = v^T tanh(W_q q_t + W_k k_j). query (B, T, D_q), key (B, S, D_k), e (B, T, S);
    W_q, W_k and v are ``nn.Linear`` layers."""
    cases = with_devices(
        [
            _attention_case("2 sentences, 3 queries, 4 keys", 2, 3, 4, 0),
            _attention_case("one query (a decoding step)", 2, 1, 4, 1),
            _attention_case("a batch of one", 1, 3, 5, 2),
            _attention_case("one key", 2, 3, 1, 3),
            _attention_case("as many queries as keys", 2, 4, 4, 4),
        ]
    )

    def no_tanh(query, key, W_q, W_k, v):
        return v(W_q(query)[:, :, None] + W_k(key)[:, None]).squeeze(-1)

    mistakes = [
        Mistake(
            "the scores come out as (B, S, T): queries go on axis 1, keys on axis 2",
            lambda **k: _scores_reference(**k).transpose(1, 2),
        ),
        Mistake("the tanh is missing: e = v^T tanh(W_q q + W_k k)", no_tanh),
    ]

    def explain(inputs, expected, got, case):
        flipped = expected.transpose(1, 2).shape
        if isinstance(got, torch.Tensor) and got.shape == flipped:
            return (
                "the scores come out as (B, S, T): queries go on axis 1, keys on axis 2"
            )
        if isinstance(got, torch.Tensor) and got.shape == (*expected.shape, 1):
            return "v(...) leaves a last axis of size 1: `.squeeze(-1)` removes it"
        return None

    return run(
        "additive_scores",
        function,
        _scores_reference,
        cases,
        compare=lambda e, g, c: _tensor(e, g, c, what="the scores e", axes="B T S"),
        mistakes=mistakes,
        explain=explain,
    )


def _softmax_case(name, scores_shape, mask_fn, seed, scale=1.0):
    def build(device):
        return {
            "scores": randn(*scores_shape, seed=seed, device=device) * scale,
            "mask": mask_fn().to(device),
        }

    return Case(name, build)


def masked_softmax(function) -> Report:
    """Check ``function(scores, mask) -> weights``: a softmax over the keys (the last
    axis) that gives exactly zero weight where ``mask`` is False. scores and weights
    (B, T, S); mask (B, 1, S) or (B, T, S), True = may attend."""
    lengths = torch.tensor([4, 2])
    cases = with_devices(
        [
            _softmax_case(
                "no padding",
                (2, 3, 4),
                lambda: masks.padding_mask(torch.tensor([4, 4]), 4),
                0,
            ),
            _softmax_case(
                "padding: the second sentence has 2 real keys of 4",
                (2, 3, 4),
                lambda: masks.padding_mask(lengths, 4),
                1,
            ),
            _softmax_case(
                "a (B, T, S) mask, each query its own keys",
                (2, 3, 3),
                lambda: masks.causal_mask(3).expand(2, 3, 3),
                2,
            ),
            _softmax_case(
                "one key",
                (2, 3, 1),
                lambda: masks.padding_mask(torch.tensor([1, 1]), 1),
                3,
            ),
            _softmax_case(
                "a batch of one",
                (1, 2, 5),
                lambda: masks.padding_mask(torch.tensor([3]), 5),
                4,
            ),
            _softmax_case(
                "a fully masked row (a sentence with no real key)",
                (2, 2, 3),
                lambda: masks.padding_mask(torch.tensor([3, 0]), 3),
                5,
            ),
            _softmax_case(
                "large scores (up to about 300)",
                (2, 3, 4),
                lambda: masks.padding_mask(lengths, 4),
                6,
                scale=100.0,
            ),
        ]
    )

    def mask_after(scores, mask):
        return torch.softmax(scores, -1) * mask

    mistakes = [
        Mistake(
            "the mask is inverted: the weights go to the masked keys (True = may "
            "attend, so fill the scores where the mask is False, `~mask`)",
            lambda scores, mask: _masked_softmax(scores, ~mask),
        ),
        Mistake(
            "the softmax runs over the queries (axis T): it must run over the "
            "keys, "
            "the last axis (`dim=-1`)",
            lambda scores, mask: (
                torch.softmax(scores.masked_fill(~mask, MIN), 1) * mask
            ),
        ),
        Mistake(
            "the mask was applied after the softmax, so a padded row's weights no "
            "longer sum to 1: fill the masked scores first, then take the softmax",
            mask_after,
        ),
        Mistake(
            "a fully masked row gets the same weight on every key: fill with a "
            "very negative number, then multiply the weights by the mask so that "
            "the row is all zeros",
            lambda scores, mask: torch.softmax(scores.masked_fill(~mask, -1e9), -1),
        ),
    ]
    return run(
        "masked_softmax",
        function,
        _masked_softmax,
        cases,
        compare=lambda e, g, c: _tensor(e, g, c, what="the weights", axes="B T S"),
        mistakes=mistakes,
        explain=_explain_softmax,
    )


def _explain_softmax(inputs, expected, got, case):
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return None
    got = got.detach().cpu().float()
    if torch.isnan(got).any():
        if "fully masked" in case.name:
            return (
                "a fully masked row gives NaN: with -inf in every score the "
                "softmax divides 0 by 0. Fill with `torch.finfo(scores.dtype).min` "
                "and multiply the weights by the mask"
            )
        return (
            "the weights overflow to NaN: exp() of large scores is infinite; "
            "`torch.softmax` subtracts each row's maximum first"
        )
    mask = inputs["mask"].cpu().expand_as(got)
    if not bool((~mask).any()) and torch.allclose(
        got, torch.full_like(got, 1 / got.shape[-1])
    ):
        return (
            "every key gets the same weight 1/S although none is masked: were all "
            "the scores filled? Fill where the mask is False (`~mask`): True = may "
            "attend"
        )
    leaked = (got * ~mask).abs().amax()
    if leaked > 1e-6:
        return (
            f"up to {leaked:.3f} of the weight falls on masked keys: were the "
            "masked scores filled before the softmax (and with True = may "
            "attend)?"
        )
    sums = got.sum(-1)
    rows = mask.any(-1)
    bad = ((sums - 1).abs() > 1e-4) & rows
    if bad.any():
        b, t = bad.nonzero()[0].tolist()
        return (
            f"row {t} of sentence {b}'s weights sums to {sums[b, t]:.3f}, not 1: "
            "does the softmax run over the keys (the last axis), with the mask "
            "applied before it?"
        )
    return None


def _context_case(name, batch, queries, keys, width, seed):
    def build(device):
        scores = randn(batch, queries, keys, seed=seed, device=device)
        weights = torch.softmax(scores, -1)
        return {
            "weights": weights,
            "value": randn(batch, keys, width, seed=seed + 1, device=device),
        }

    return Case(name, build)


def context_vector(function) -> Report:
    """Check ``function(weights, value) -> context``: c_t = sum_j alpha_tj v_j for every
    query. weights (B, T, S), value (B, S, D_v), context (B, T, D_v)."""
    cases = with_devices(
        [
            _context_case("2 sentences, 3 queries, 4 keys of width 5", 2, 3, 4, 5, 0),
            _context_case("one query", 2, 1, 4, 5, 1),
            _context_case("a batch of one", 1, 3, 4, 2, 2),
            _context_case("one key", 2, 3, 1, 5, 3),
            _context_case("T = S = D_v = 4", 2, 4, 4, 4, 4),
        ]
    )
    mistakes = [
        Mistake(
            "the weights are used transposed: c_t sums over the keys j of row t, "
            "`weights @ value`",
            lambda weights, value: weights.transpose(1, 2) @ value,
        ),
        Mistake(
            "the weighted sum is divided by S: the weights already sum to 1",
            lambda weights, value: weights @ value / value.shape[1],
        ),
        Mistake(
            "the context ignores the weights (a plain mean of the values)",
            lambda weights, value: value.mean(1, keepdim=True).expand(
                -1, weights.shape[1], -1
            ),
        ),
    ]
    return run(
        "context_vector",
        function,
        lambda weights, value: weights @ value,
        cases,
        compare=lambda e, g, c: _tensor(e, g, c, what="the context", axes="B T D_v"),
        mistakes=mistakes,
    )


# --- chapter 4: scaled dot-product attention, heads, masks ---------------------------


def _sdpa_case(name, lead, queries, keys, d_k, seed, mask_fn=None):
    def build(device):
        return {
            "query": randn(*lead, queries, d_k, seed=seed, device=device),
            "key": randn(*lead, keys, d_k, seed=seed + 1, device=device),
            "value": randn(*lead, keys, 3, seed=seed + 2, device=device),
            "mask": None if mask_fn is None else mask_fn().to(device),
        }

    return Case(name, build)


def _scaled(query, key, value, mask, scale):
    scores = query @ key.transpose(-2, -1) / scale
    weights = _masked_softmax(scores, mask)
    return weights @ value, weights


def scaled_dot_product_attention(function) -> Report:
    """Check ``function(query, key, value, mask=None) -> (output, weights)``:
    softmax(Q K^T / sqrt(d_k)) V. query (..., T, d_k), key (..., S, d_k), value
    (..., S, d_v); mask broadcastable to (..., T, S), True = may attend; output
    (..., T, d_v), weights (..., T, S)."""
    cases = with_devices(
        [
            _sdpa_case(
                "no mask, 2 sentences, 3 queries, 4 keys, d_k = 16", (2,), 3, 4, 16, 0
            ),
            _sdpa_case(
                "a padding mask (B, 1, S)",
                (2,),
                3,
                4,
                16,
                1,
                lambda: masks.padding_mask(torch.tensor([4, 2]), 4),
            ),
            _sdpa_case(
                "a causal mask (T, T)", (2,), 4, 4, 8, 2, lambda: masks.causal_mask(4)
            ),
            _sdpa_case(
                "heads: (B, h, T, d_k) with a mask (B, 1, 1, S)",
                (2, 3),
                3,
                5,
                8,
                3,
                lambda: masks.padding_mask(torch.tensor([5, 3]), 5)[:, None],
            ),
            _sdpa_case("one query", (2,), 1, 4, 16, 4),
            _sdpa_case("a batch of one", (1,), 3, 3, 16, 5),
        ]
    )

    def compare(expected, got, case):
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise Mismatch(
                f"expected a pair (output, weights); got {type(got).__name__}"
            )
        _tensor(expected[1], got[1], case, what="the weights", axes=None)
        _tensor(expected[0], got[0], case, what="the output", axes=None)

    def with_scale(scale_of):
        return lambda query, key, value, mask: _scaled(
            query, key, value, mask, scale_of(query)
        )

    def inverted(query, key, value, mask):
        return _sdpa(query, key, value, None if mask is None else ~mask)

    def wrong_axis(query, key, value, mask):
        scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, MIN)
        weights = torch.softmax(scores, -2)
        return weights @ value, weights

    mistakes = [
        Mistake("the scores are not divided by √d_k", with_scale(lambda q: 1.0)),
        Mistake(
            "the scores are divided by d_k, not √d_k", with_scale(lambda q: q.shape[-1])
        ),
        Mistake(
            "the scale uses the wrong size: d_k is the last axis of the queries "
            "and "
            "keys",
            with_scale(lambda q: math.sqrt(q.shape[-2])),
        ),
        Mistake("the mask is inverted (True = may attend)", inverted),
        Mistake(
            "the softmax runs over the queries: it must run over the keys, the "
            "last "
            "axis",
            wrong_axis,
        ),
    ]
    return run(
        "scaled_dot_product_attention",
        function,
        _sdpa,
        cases,
        compare=compare,
        mistakes=mistakes,
    )


def _heads_case(name, batch, length, width, heads, seed):
    return Case(
        name,
        lambda d: {
            "x": randn(batch, length, width, seed=seed, device=d),
            "num_heads": heads,
        },
    )


def _split_reference(x, num_heads):
    layer = SimpleNamespace(num_heads=num_heads, d_k=x.shape[-1] // num_heads)
    return MultiHeadAttention.split_heads(layer, x)


def split_heads(function) -> Report:
    """Check ``function(x, num_heads) -> heads``: x (B, S, D) to (B, h, S, d_k), head i
    holding features i * d_k to (i + 1) * d_k - 1 of every position."""
    cases = with_devices(
        [
            _heads_case("B = 2, S = 3, D = 8, h = 2", 2, 3, 8, 2, 0),
            _heads_case("one head", 2, 3, 8, 1, 1),
            _heads_case("one position", 2, 1, 8, 4, 2),
            _heads_case("a batch of one", 1, 5, 6, 3, 3),
            _heads_case("as many positions as heads (S = h = 4)", 2, 4, 8, 4, 4),
        ]
    )

    def across(x, num_heads):
        batch, length, width = x.shape
        return x.reshape(batch, num_heads, length, width // num_heads)

    def interleaved(x, num_heads):
        batch, length, width = x.shape
        return x.view(batch, length, width // num_heads, num_heads).permute(0, 3, 1, 2)

    mistakes = [
        Mistake(
            "the heads are cut across positions: reshape to (B, S, h, d_k) first, "
            "then move h forward with `transpose(1, 2)`",
            across,
        ),
        Mistake(
            "the transpose is missing: the result is (B, S, h, d_k); "
            "`transpose(1, 2)` makes it (B, h, S, d_k)",
            lambda x, num_heads: x.view(*x.shape[:2], num_heads, -1),
        ),
        Mistake(
            "each head takes every h-th feature instead of a block of d_k neighbours",
            interleaved,
        ),
    ]

    def explain(inputs, expected, got, case):
        x, h = inputs["x"], inputs["num_heads"]
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (
            *x.shape[:2],
            h,
            x.shape[2] // h,
        ):
            return mistakes[1].cause
        return None

    return run(
        "split_heads",
        function,
        _split_reference,
        cases,
        compare=lambda e, g, c: _tensor(e, g, c, what="the heads", axes="B h S d_k"),
        mistakes=mistakes,
        explain=explain,
    )


def merge_heads(function) -> Report:
    """Check ``function(heads) -> x``: (B, h, T, d_k) back to (B, T, D), D = h * d_k,
    the inverse of ``split_heads``."""

    def case(name, batch, heads, length, d_k, seed):
        return Case(
            name,
            lambda d: {"heads": randn(batch, heads, length, d_k, seed=seed, device=d)},
        )

    cases = with_devices(
        [
            case("B = 2, h = 2, T = 3, d_k = 4", 2, 2, 3, 4, 0),
            case("one head", 2, 1, 3, 4, 1),
            case("one position", 2, 4, 1, 2, 2),
            case("a batch of one", 1, 3, 5, 2, 3),
        ]
    )

    def reference(heads):
        batch, h, length, d_k = heads.shape
        return heads.transpose(1, 2).reshape(batch, length, h * d_k)

    mistakes = [
        Mistake(
            "the heads were merged without moving h back behind T: `transpose(1, "
            "2)` first, then reshape",
            lambda heads: heads.reshape(heads.shape[0], heads.shape[2], -1),
        ),
        Mistake(
            "the features of the heads are interleaved: after `transpose(1, 2)` "
            "the "
            "last two axes are (h, d_k), to be joined in that order",
            lambda heads: heads.permute(0, 2, 3, 1).reshape(
                heads.shape[0], heads.shape[2], -1
            ),
        ),
    ]
    return run(
        "merge_heads",
        function,
        reference,
        cases,
        compare=lambda e, g, c: _tensor(
            e, g, c, what="the merged output", axes="B T D"
        ),
        mistakes=mistakes,
    )


def causal_mask(function) -> Report:
    """Check ``function(size) -> mask``: the (T, T) boolean mask, True where query t may
    attend to key s <= t."""
    cases = [Case(f"T = {n}", lambda d, n=n: {"size": n}) for n in (4, 1, 6)]
    mistakes = [
        Mistake(
            "each position sees the future and not the past: keep the lower "
            "triangle (`tril`), not the upper one",
            lambda size: torch.ones(size, size, dtype=torch.bool).triu(),
        ),
        Mistake(
            "the diagonal is False: a position may attend to itself",
            lambda size: torch.ones(size, size, dtype=torch.bool).tril(-1),
        ),
        Mistake(
            "the polarity is inverted: True means may attend",
            lambda size: ~masks.causal_mask(size),
        ),
    ]

    def explain(inputs, expected, got, case):
        if isinstance(got, torch.Tensor) and got.dtype != torch.bool:
            return (
                "build it with `dtype=torch.bool` (a float mask of 0 and 1 is not one)"
            )
        return None

    return run(
        "causal_mask",
        function,
        masks.causal_mask,
        cases,
        compare=lambda e, g, c: _tensor(e, g, c, what="the mask", axes="T T"),
        mistakes=mistakes,
        explain=explain,
    )


def padding_mask(function) -> Report:
    """Check ``function(lengths, size) -> mask``: (B,) lengths to the (B, 1, S) mask,
    True at real positions (j < length)."""

    def case(name, lengths, size):
        return Case(
            name, lambda d: {"lengths": torch.tensor(lengths, device=d), "size": size}
        )

    cases = with_devices(
        [
            case("lengths 3, 1, 4 in S = 4", [3, 1, 4], 4),
            case("a batch of one", [2], 5),
            case("a sentence of length 0", [0, 2], 3),
            case("S longer than every sentence", [2, 3], 6),
        ]
    )
    mistakes = [
        Mistake(
            "the mask is (B, S): a padding mask has the query axis too, (B, 1, S), "
            "so that it broadcasts over the queries",
            lambda lengths, size: masks.length_mask(lengths, size),
        ),
        Mistake(
            "off by one: position j is real when j < length (positions count from 0)",
            lambda lengths, size: masks.padding_mask(lengths + 1, size),
        ),
        Mistake(
            "the polarity is inverted: True marks the real tokens",
            lambda lengths, size: ~masks.padding_mask(lengths, size),
        ),
    ]
    return run(
        "padding_mask",
        function,
        masks.padding_mask,
        cases,
        compare=lambda e, g, c: _tensor(e, g, c, what="the mask", axes="B 1 S"),
        mistakes=mistakes,
    )


# --- chapter 5: a decoder step with a key/value cache, a step of beam search ---------


def _self_attention_steps(step_function, attention, x):
    """Run a cached self-attention step by step over x (B, T, D): outputs (B, T, D) and
    the length of the final cache."""
    cache, outs = None, []
    for t in range(x.shape[1]):
        out, cache = step_function(attention=attention, x=x[:, t : t + 1], cache=cache)
        outs.append(out)
    positions = cache.key.shape[2] if isinstance(cache, KeyValue) else None
    return torch.cat(outs, dim=1), positions


def _cached_reference(attention, x, cache):
    out, _, projected = attention.self_attend(x, cache=cache)
    return out, projected


def cached_self_attention(function) -> Report:
    """Check ``function(attention, x, cache) -> (output, new_cache)``: one decoding step
    of self-attention with a key/value cache. ``attention`` is a ``MultiHeadAttention``;
    x (B, 1, D) is the newest token; ``cache`` is a ``KeyValue`` of the earlier tokens'
    keys and values (B, h, t, d_k), or None at the first step. The checker runs it token
    by token, as generation does, and compares with the library's step."""

    def case(name, batch, length, width, heads, seed):
        def build(device):
            attention = _seeded(MultiHeadAttention(width, heads, fused=False), seed)
            return {
                "attention": attention.to(device),
                "x": randn(batch, length, width, seed=seed, device=device),
            }

        return Case(name, build)

    cases = with_devices(
        [
            case("2 sentences, 4 tokens, D = 8, h = 2", 2, 4, 8, 2, 0),
            case("one token", 2, 1, 8, 2, 1),
            case("a batch of one, 5 tokens", 1, 5, 6, 3, 2),
            case("one head", 2, 3, 4, 1, 3),
        ]
    )

    def call(function, inputs):
        return _self_attention_steps(function, inputs["attention"], inputs["x"])

    def compare(expected, got, case):
        if not isinstance(got[0], torch.Tensor):
            raise Mismatch("expected each step to return (output, new_cache)")
        _tensor(
            expected[0],
            got[0],
            case,
            what="the outputs of the steps, joined",
            axes="B T D",
        )
        if got[1] != expected[1]:
            raise Mismatch(
                f"the outputs are right, but after {expected[1]} steps the "
                f"cache returned holds {got[1]} positions, not "
                f"{expected[1]}"
            )

    def no_cache(attention, x, cache):
        out, _, projected = attention.self_attend(x)
        return out, projected

    def stale(attention, x, cache):
        out, _, projected = attention.self_attend(x, cache=cache)
        return out, cache if cache is not None else projected

    mistakes = [  # step functions, run token by token like the learner's
        Mistake(
            "the new token attends to itself only: attend to the cache extended "
            "with its keys and values (`cache.extend(new)`), and return that as "
            "the new cache",
            no_cache,
        ),
        Mistake(
            "the cache returned is not extended: return the keys and values "
            "including the new token's, or the next step will not see it",
            stale,
        ),
    ]

    def explain(inputs, expected, got, case):
        if got[1] is not None and got[1] != expected[1]:
            return (
                f"after {expected[1]} steps the cache holds {got[1]} position(s), "
                f"expected {expected[1]}: extend it with the new keys and values, "
                "along the positions' axis (axis 2 of (B, h, t, d_k))"
            )
        return None

    return run(
        "cached_self_attention",
        function,
        _cached_reference,
        cases,
        compare=compare,
        mistakes=mistakes,
        explain=explain,
        call=call,
    )


def beam_step(function) -> Report:
    """Check ``function(scores, log_probs, n) -> (top_scores, beams, tokens)``: the n
    best continuations of each sentence's k hypotheses over all beams and tokens. scores
    (B, k), log_probs (B * k, V); each result (B, n), best first."""

    def case(name, batch, beams, vocab, n, seed, first=False):
        def build(device):
            scores = randn(batch, beams, seed=seed, device=device) - 3
            if first:
                scores[:, 1:] = float("-inf")
            log_probs = torch.log_softmax(
                randn(batch * beams, vocab, seed=seed + 1, device=device) * 2, -1
            )
            return {"scores": scores, "log_probs": log_probs, "n": n}

        return Case(name, build)

    cases = with_devices(
        [
            case("2 sentences, k = 3, V = 5, n = 3", 2, 3, 5, 3, 0),
            case("the first step (beam 0 alone is alive)", 2, 3, 7, 3, 1, first=True),
            case("n = 2k, as beam search asks", 2, 3, 6, 6, 2),
            case("a batch of one", 1, 4, 5, 4, 3),
            case("k = 1 (greedy)", 3, 1, 6, 1, 4),
        ]
    )

    def compare(expected, got, case):
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise Mismatch(
                "expected three tensors (top_scores, beams, tokens); got "
                f"{type(got).__name__}"
            )
        for name, e, g in zip(("the scores", "the beams", "the tokens"), expected, got):
            _tensor(e, g, case, what=name, axes="B n")

    def no_history(scores, log_probs, n):
        return top_candidates(torch.zeros_like(scores), log_probs, n)

    def wrong_divisor(scores, log_probs, n):
        top, beam, token = top_candidates(scores, log_probs, n)
        index = beam * log_probs.shape[-1] + token
        return top, index % scores.shape[1], index // scores.shape[1]

    mistakes = [
        Mistake(
            "the hypotheses' scores are not added: a candidate's score is its "
            "beam's score plus the log-probability of its token",
            no_history,
        ),
        Mistake(
            "beam and token are read from the flat index with the wrong divisor: "
            "beam = index // V, token = index % V",
            wrong_divisor,
        ),
    ]
    return run(
        "beam_step", function, top_candidates, cases, compare=compare, mistakes=mistakes
    )


# --- chapter 6: buckets by length, the diagonal baseline ------------------------------


def length_buckets(function) -> Report:
    """Check ``function(lengths, edges, start=1) -> buckets``: the items' indices
    grouped by length, ``edges=[3, 5, 10]`` giving the buckets 1-3, 4-5 and 6-10, as a
    list of (label, indices) pairs in order; empty buckets and lengths beyond the last
    edge left out; a bucket of one length labelled by that length alone ("4")."""

    def case(name, lengths, edges, start=1):
        return Case(
            name,
            lambda d: {"lengths": list(lengths), "edges": list(edges), "start": start},
        )

    cases = [
        case("lengths 1 to 10 in buckets 1-3, 4-5, 6-10", range(1, 11), [3, 5, 10]),
        case("lengths on the edges", [3, 5, 4, 6, 3], [3, 5, 6]),
        case("an empty bucket (no length 4 or 5)", [1, 2, 6, 7], [3, 5, 10]),
        case("lengths beyond the last edge", [2, 12, 9, 30], [5, 10]),
        case("one item", [7], [5, 10]),
        case("buckets starting at 5", [5, 6, 9, 12], [8, 12], 5),
    ]

    def compare(expected, got, case):
        if not isinstance(got, (list, tuple)):
            raise Mismatch(
                f"expected a list of (label, indices) pairs; got {type(got).__name__}"
            )
        got = [(label, list(indices)) for label, indices in got]
        if got != expected:
            raise Mismatch(f"expected {expected}, got {got}")

    def exclusive(lengths, edges, start=1):
        out, low = [], start
        for high in edges:
            members = [i for i, n in enumerate(lengths) if low <= n < high]
            if members:
                out.append((f"{low}" if low == high else f"{low}-{high}", members))
            low = high
        return out

    def keeps_empty(lengths, edges, start=1):
        out, low = [], start
        for high in edges:
            members = [i for i, n in enumerate(lengths) if low <= n <= high]
            out.append((f"{low}" if low == high else f"{low}-{high}", members))
            low = high + 1
        return out

    mistakes = [
        Mistake(
            "each bucket leaves out its upper edge: `edges=[3, 5]` means 1-3 and "
            "4-5, both ends included",
            exclusive,
        ),
        Mistake(
            "an empty bucket is kept: leave it out (a score of no sentences is "
            "undefined)",
            keeps_empty,
        ),
    ]

    def explain(inputs, expected, got, case):
        try:
            seen = {i for _, indices in got for i in indices}
        except TypeError:
            return None
        beyond = {i for i, n in enumerate(inputs["lengths"]) if n > inputs["edges"][-1]}
        if seen & beyond:
            return "lengths beyond the last edge are put in a bucket: leave them out"
        return None

    def reference(lengths, edges, start=1):
        return [
            (label, list(idx)) for label, idx in _length_buckets(lengths, edges, start)
        ]

    return run(
        "length_buckets",
        function,
        reference,
        cases,
        compare=compare,
        mistakes=mistakes,
        explain=explain,
    )


def diagonal_alignment(function) -> Report:
    """Check ``function(target_words, source_words) -> positions``: the baseline of
    chapter 6, a monotone alignment at an even pace, (T,) source positions (integers):
    the first target word to source word 0, the last to the last source word, the ones
    between evenly spaced and rounded to the nearest."""
    cases = [
        Case(
            f"T = {t}, S = {s}",
            lambda d, t=t, s=s: {"target_words": t, "source_words": s},
        )
        for t, s in ((5, 9), (4, 4), (7, 3), (1, 6), (6, 1), (3, 8))
    ]

    def even(target_words, source_words, *, last, steps, rounding=torch.round):
        t = torch.arange(target_words, dtype=torch.float64)
        return rounding(t * (source_words - last) / max(target_words - steps, 1)).long()

    mistakes = [
        Mistake(
            "the last target word goes beyond the last source word: positions run "
            "from 0 to S - 1, so the pace is (S - 1) / (T - 1)",
            lambda target_words, source_words: even(
                target_words, source_words, last=0, steps=1
            ),
        ),
        Mistake(
            "the pace divides by T, not T - 1: the last target word must land on "
            "the last source word",
            lambda target_words, source_words: even(
                target_words, source_words, last=1, steps=0
            ),
        ),
        Mistake(
            "the positions are rounded down: round to the nearest",
            lambda target_words, source_words: even(
                target_words, source_words, last=1, steps=1, rounding=torch.floor
            ),
        ),
    ]
    return run(
        "diagonal_alignment",
        function,
        _diagonal,
        cases,
        compare=lambda e, g, c: _tensor(e, g, c, what="the positions", axes="T"),
        mistakes=mistakes,
    )


__all__ = [
    "additive_scores",
    "beam_step",
    "cached_self_attention",
    "causal_mask",
    "context_vector",
    "greedy_decode",
    "gru_step",
    "masked_softmax",
    "masked_token_loss",
    "merge_heads",
    "padding_mask",
    "scaled_dot_product_attention",
    "split_heads",
    "teacher_forcing",
    "length_buckets",
    "diagonal_alignment",
]
