"""The checkers of the write-it exercises, checked themselves.

For every checker: a correct answer (the one the worked solutions show, written from
the equations, not a call into the library) passes; the stub reads "not written yet";
and planted wrong answers, the mistakes learners typically make, fail with the cause
the checker is meant to name.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.course import check
from attnlab.nn import masks
from attnlab.nn.multihead import KeyValue

MIN = torch.finfo(torch.float32).min


def stub(*args, **kwargs):
    raise NotImplementedError


# --- correct answers, written as a learner would -------------------------------------


def teacher_forcing(targets, *, bos_id, pad_id):
    longest = max(map(len, targets))
    tgt_in = [[bos_id, *t[:-1]] + [pad_id] * (longest - len(t)) for t in targets]
    tgt_out = [list(t) + [pad_id] * (longest - len(t)) for t in targets]
    return torch.tensor(tgt_in), torch.tensor(tgt_out)


def masked_token_loss(logits, targets, pad_id):
    log_probs = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    picked = log_probs.gather(-1, targets[..., None])[..., 0]  # (B, T)
    real = targets != pad_id
    return -(picked * real).sum() / real.sum()


def gru_step(x, h, cell):
    W_r, W_z, W_n = cell.weight_ih.chunk(3)
    U_r, U_z, U_n = cell.weight_hh.chunk(3)
    b_ir, b_iz, b_in = cell.bias_ih.chunk(3)
    b_hr, b_hz, b_hn = cell.bias_hh.chunk(3)
    r = torch.sigmoid(x @ W_r.T + b_ir + h @ U_r.T + b_hr)
    z = torch.sigmoid(x @ W_z.T + b_iz + h @ U_z.T + b_hz)
    n = torch.tanh(x @ W_n.T + b_in + r * (h @ U_n.T + b_hn))
    return (1 - z) * n + z * h


def greedy_decode(model, src, src_len, *, bos_id, eos_id, max_len):
    memory = model.encode(src, src_len)
    prev = torch.full((src.shape[0],), bos_id, device=src.device)
    state, outputs = None, [[] for _ in range(src.shape[0])]
    done = [False] * src.shape[0]
    with torch.no_grad():
        for _ in range(max_len):
            step = model.decode_step(prev, memory, state)
            state, prev = step.state, step.logits.argmax(-1)
            for b, token in enumerate(prev.tolist()):
                if not done[b]:
                    outputs[b].append(token)
                    done[b] = token == eos_id
            if all(done):
                break
    return outputs


def additive_scores(query, key, *, W_q, W_k, v):
    features = torch.tanh(W_q(query)[:, :, None, :] + W_k(key)[:, None, :, :])
    return v(features)[..., 0]  # (B, T, S)


def masked_softmax(scores, mask):
    filled = scores.masked_fill(~mask, MIN)
    return torch.softmax(filled, dim=-1) * mask


def context_vector(weights, value):
    return torch.einsum("bts,bsd->btd", weights, value)


def scaled_dot_product_attention(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, MIN)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask
    return weights @ value, weights


def split_heads(x, num_heads):
    B, S, D = x.shape
    return x.view(B, S, num_heads, D // num_heads).transpose(1, 2)


def merge_heads(heads):
    B, h, T, d_k = heads.shape
    return heads.transpose(1, 2).reshape(B, T, h * d_k)


def causal_mask(size):
    return torch.tril(torch.ones(size, size, dtype=torch.bool))


def padding_mask(lengths, size):
    return (torch.arange(size, device=lengths.device)[None, :] < lengths[:, None])[
        :, None
    ]


def cached_self_attention(attention, x, cache):
    q = attention.split_heads(attention.W_q(x))
    new = KeyValue(
        attention.split_heads(attention.W_k(x)), attention.split_heads(attention.W_v(x))
    )
    kv = new if cache is None else cache.extend(new)
    weights = torch.softmax(q @ kv.key.transpose(-2, -1) / math.sqrt(attention.d_k), -1)
    heads = (weights @ kv.value).transpose(1, 2).reshape(x.shape[0], 1, -1)
    return attention.W_o(heads), kv


def beam_step(scores, log_probs, n):
    B, k = scores.shape
    V = log_probs.shape[-1]
    total = (scores.reshape(B * k, 1) + log_probs).reshape(B, k * V)
    top, index = total.topk(n, dim=-1)
    return top, index // V, index % V


def length_buckets(lengths, edges, start=1):
    buckets, low = [], start
    for high in edges:
        members = [i for i, n in enumerate(lengths) if low <= n <= high]
        if members:
            buckets.append((str(low) if low == high else f"{low}-{high}", members))
        low = high + 1
    return buckets


def diagonal_alignment(target_words, source_words):
    pace = (source_words - 1) / max(target_words - 1, 1)
    return torch.tensor([round(t * pace) for t in range(target_words)])


CORRECT = {name: globals()[name] for name in check.__all__}


# --- planted mistakes: (checker, wrong answer, words the cause must contain) --------


def _tf_not_shifted(targets, *, bos_id, pad_id):
    _, out = teacher_forcing(targets, bos_id=bos_id, pad_id=pad_id)
    return out, out


def _tf_too_long(targets, *, bos_id, pad_id):
    longest = max(map(len, targets)) + 1
    tgt_in = [[bos_id, *t] + [pad_id] * (longest - len(t) - 1) for t in targets]
    return torch.tensor(tgt_in), teacher_forcing(targets, bos_id=bos_id, pad_id=pad_id)[
        1
    ]


def _loss_with_padding(logits, targets, pad_id):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _loss_pad_zero(logits, targets, pad_id):
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=0
    )


def _loss_per_sentence(logits, targets, pad_id):
    each = F.cross_entropy(
        logits.transpose(1, 2), targets, reduction="none", ignore_index=pad_id
    )
    return (each.sum(1) / (targets != pad_id).sum(1)).mean()


def _loss_item(logits, targets, pad_id):
    return masked_token_loss(logits, targets, pad_id).item()


def _gru_variant(x, h, cell, *, order=(0, 1, 2), swap_z=False, reset_before=False):
    """A GRU step as a learner might get it wrong: the gates' blocks taken in another
    order, z and 1 - z swapped, or r applied to h before U_n (Cho et al.'s form)."""
    W_r, W_z, W_n = (cell.weight_ih.chunk(3)[i] for i in order)
    U_r, U_z, U_n = (cell.weight_hh.chunk(3)[i] for i in order)
    b_ir, b_iz, b_in = (cell.bias_ih.chunk(3)[i] for i in order)
    b_hr, b_hz, b_hn = (cell.bias_hh.chunk(3)[i] for i in order)
    r = torch.sigmoid(x @ W_r.T + b_ir + h @ U_r.T + b_hr)
    z = torch.sigmoid(x @ W_z.T + b_iz + h @ U_z.T + b_hz)
    if reset_before:
        n = torch.tanh(x @ W_n.T + b_in + (r * h) @ U_n.T + b_hn)
    else:
        n = torch.tanh(x @ W_n.T + b_in + r * (h @ U_n.T + b_hn))
    return z * n + (1 - z) * h if swap_z else (1 - z) * n + z * h


def _gru_swapped(x, h, cell):
    return _gru_variant(x, h, cell, swap_z=True)


def _gru_reset_before(x, h, cell):
    return _gru_variant(x, h, cell, reset_before=True)


def _gru_gate_order(x, h, cell):
    return _gru_variant(x, h, cell, order=(1, 0, 2))


def _greedy_no_state(model, src, src_len, *, bos_id, eos_id, max_len):
    class Forgetful:
        def encode(self, src, src_len):
            return model.encode(src, src_len)

        def decode_step(self, prev, memory, state):
            return model.decode_step(prev, memory, None)

    return greedy_decode(
        Forgetful(), src, src_len, bos_id=bos_id, eos_id=eos_id, max_len=max_len
    )


def _greedy_no_eos(model, src, src_len, *, bos_id, eos_id, max_len):
    rows = greedy_decode(
        model, src, src_len, bos_id=bos_id, eos_id=eos_id, max_len=max_len
    )
    return [row[:-1] if row and row[-1] == eos_id else row for row in rows]


def _greedy_first_stops_all(model, src, src_len, *, bos_id, eos_id, max_len):
    memory = model.encode(src, src_len)
    prev = torch.full((src.shape[0],), bos_id)
    state, rows = None, [[] for _ in range(src.shape[0])]
    for _ in range(max_len):
        step = model.decode_step(prev, memory, state)
        state, prev = step.state, step.logits.argmax(-1)
        for row, token in zip(rows, prev.tolist()):
            row.append(token)
        if (prev == eos_id).any():
            break
    return rows


def _greedy_never_stops(model, src, src_len, *, bos_id, eos_id, max_len):
    memory = model.encode(src, src_len)
    prev = torch.full((src.shape[0],), bos_id)
    state, rows = None, [[] for _ in range(src.shape[0])]
    ended = [False] * src.shape[0]
    for _ in range(max_len):
        step = model.decode_step(prev, memory, state)
        state, prev = step.state, step.logits.argmax(-1)
        for b, token in enumerate(prev.tolist()):
            rows[b].append(token)
            ended[b] = ended[b] or token == eos_id
        if all(ended):
            break
    return rows


def _scores_transposed(query, key, *, W_q, W_k, v):
    return additive_scores(query, key, W_q=W_q, W_k=W_k, v=v).transpose(1, 2)


def _scores_no_tanh(query, key, *, W_q, W_k, v):
    return v(W_q(query)[:, :, None, :] + W_k(key)[:, None, :, :])[..., 0]


def _softmax_inverted(scores, mask):
    return torch.softmax(scores.masked_fill(mask, MIN), -1) * ~mask


def _softmax_after(scores, mask):
    return torch.softmax(scores, -1) * mask


def _softmax_neg_inf(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)


def _softmax_wrong_axis(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, MIN), dim=1) * mask


def _softmax_by_hand(scores, mask):  # exp without subtracting the maximum
    e = scores.exp() * mask
    return e / e.sum(-1, keepdim=True).clamp(min=1e-30)


def _context_transposed(weights, value):
    return weights.transpose(1, 2) @ value


def _context_mean(weights, value):
    return (weights @ value) / value.shape[1]


def _sdpa_no_scale(query, key, value, mask=None):
    scores = query @ key.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, MIN)
    weights = torch.softmax(scores, -1)
    return weights @ value, weights


def _sdpa_scale_d_k(query, key, value, mask=None):
    return scaled_dot_product_attention(
        query / math.sqrt(query.shape[-1]), key, value, mask
    )


def _sdpa_inverted(query, key, value, mask=None):
    return scaled_dot_product_attention(
        query, key, value, None if mask is None else ~mask
    )


def _sdpa_output_only(query, key, value, mask=None):
    return scaled_dot_product_attention(query, key, value, mask)[0]


def _split_across(x, num_heads):
    B, S, D = x.shape
    return x.reshape(B, num_heads, S, D // num_heads)


def _split_no_transpose(x, num_heads):
    B, S, D = x.shape
    return x.view(B, S, num_heads, D // num_heads)


def _merge_no_transpose(heads):
    B, h, T, d_k = heads.shape
    return heads.reshape(B, T, h * d_k)


def _merge_view(heads):
    B, h, T, d_k = heads.shape
    return heads.transpose(1, 2).view(B, T, h * d_k)


def _causal_upper(size):
    return torch.ones(size, size, dtype=torch.bool).triu()


def _causal_no_diagonal(size):
    return torch.ones(size, size, dtype=torch.bool).tril(-1)


def _causal_float(size):
    return torch.ones(size, size).tril()


def _padding_2d(lengths, size):
    return torch.arange(size)[None, :] < lengths[:, None]


def _padding_off_by_one(lengths, size):
    return (torch.arange(size)[None, :] <= lengths[:, None])[:, None]


def _padding_inverted(lengths, size):
    return (torch.arange(size)[None, :] >= lengths[:, None])[:, None]


def _cache_not_extended(attention, x, cache):
    out, new = cached_self_attention(attention, x, None)
    return out, new


def _cache_stale(attention, x, cache):
    out, kv = cached_self_attention(attention, x, cache)
    return out, cache if cache is not None else kv


def _cache_wrong_axis(attention, x, cache):
    q = attention.split_heads(attention.W_q(x))
    new = KeyValue(
        attention.split_heads(attention.W_k(x)), attention.split_heads(attention.W_v(x))
    )
    if cache is not None:
        new = KeyValue(
            torch.cat([cache.key, new.key], 1), torch.cat([cache.value, new.value], 1)
        )
    weights = torch.softmax(
        q @ new.key.transpose(-2, -1) / math.sqrt(attention.d_k), -1
    )
    heads = (weights @ new.value).transpose(1, 2).reshape(x.shape[0], 1, -1)
    return attention.W_o(heads), new


def _beam_no_history(scores, log_probs, n):
    return beam_step(torch.zeros_like(scores), log_probs, n)


def _beam_divisor(scores, log_probs, n):
    top, beam, token = beam_step(scores, log_probs, n)
    k = scores.shape[1]
    index = beam * log_probs.shape[-1] + token
    return top, index % k, index // k


def _buckets_exclusive(lengths, edges, start=1):
    buckets, low = [], start
    for high in edges:
        members = [i for i, n in enumerate(lengths) if low <= n < high]
        if members:
            buckets.append((f"{low}-{high}", members))
        low = high
    return buckets


def _buckets_keep_beyond(lengths, edges, start=1):
    found = length_buckets(lengths, edges, start)
    beyond = [i for i, n in enumerate(lengths) if n > edges[-1]]
    return found + ([(f">{edges[-1]}", beyond)] if beyond else [])


def _buckets_keep_empty(lengths, edges, start=1):
    buckets, low = [], start
    for high in edges:
        buckets.append(
            (
                f"{low}-{high}" if low != high else str(low),
                [i for i, n in enumerate(lengths) if low <= n <= high],
            )
        )
        low = high + 1
    return buckets


def _diagonal_floor(target_words, source_words):
    pace = (source_words - 1) / max(target_words - 1, 1)
    return torch.tensor([math.floor(t * pace) for t in range(target_words)])


def _diagonal_over_t(target_words, source_words):
    pace = (source_words - 1) / target_words
    return torch.tensor([round(t * pace) for t in range(target_words)])


def _diagonal_to_s(target_words, source_words):
    pace = source_words / max(target_words - 1, 1)
    return torch.tensor([round(t * pace) for t in range(target_words)])


PLANTED = [
    ("teacher_forcing", _tf_not_shifted, "not shifted"),
    ("teacher_forcing", _tf_too_long, "one position too long"),
    ("masked_token_loss", _loss_with_padding, "padded positions are counted"),
    ("masked_token_loss", _loss_pad_zero, "taken to be 0"),
    ("masked_token_loss", _loss_per_sentence, "sentence by sentence"),
    ("masked_token_loss", _loss_item, "must carry a gradient"),
    ("gru_step", _gru_swapped, "z and 1 - z are swapped"),
    ("gru_step", _gru_reset_before, "r multiplies h before U_n"),
    ("gru_step", _gru_gate_order, "r, z, n"),
    ("greedy_decode", _greedy_no_state, "state is not carried"),
    ("greedy_decode", _greedy_no_eos, "`<eos>` is left out"),
    ("greedy_decode", _greedy_first_stops_all, "stops before its `<eos>`"),
    ("greedy_decode", _greedy_never_stops, "goes on after its `<eos>`"),
    ("additive_scores", _scores_transposed, "(B, S, T)"),
    ("additive_scores", _scores_no_tanh, "tanh is missing"),
    ("masked_softmax", _softmax_inverted, "inverted"),
    ("masked_softmax", _softmax_after, "after the softmax"),
    ("masked_softmax", _softmax_neg_inf, "fully masked row gives NaN"),
    ("masked_softmax", _softmax_wrong_axis, "runs over the queries"),
    ("masked_softmax", _softmax_by_hand, "overflow"),
    ("context_vector", _context_transposed, "transposed"),
    ("context_vector", _context_mean, "divided by S"),
    ("scaled_dot_product_attention", _sdpa_no_scale, "not divided by √d_k"),
    ("scaled_dot_product_attention", _sdpa_scale_d_k, "divided by d_k, not √d_k"),
    ("scaled_dot_product_attention", _sdpa_inverted, "mask is inverted"),
    ("scaled_dot_product_attention", _sdpa_output_only, "expected a pair"),
    ("split_heads", _split_across, "cut across positions"),
    ("split_heads", _split_no_transpose, "transpose is missing"),
    ("merge_heads", _merge_no_transpose, "without moving h back"),
    ("merge_heads", _merge_view, "`.contiguous()`"),
    ("causal_mask", _causal_upper, "sees the future"),
    ("causal_mask", _causal_no_diagonal, "diagonal"),
    ("causal_mask", _causal_float, "dtype=torch.bool"),
    ("padding_mask", _padding_2d, "(B, 1, S)"),
    ("padding_mask", _padding_off_by_one, "off by one"),
    ("padding_mask", _padding_inverted, "polarity is inverted"),
    ("cached_self_attention", _cache_not_extended, "attends to itself only"),
    ("cached_self_attention", _cache_stale, "not extended"),
    ("cached_self_attention", _cache_wrong_axis, "Likely cause"),
    ("beam_step", _beam_no_history, "scores are not added"),
    ("beam_step", _beam_divisor, "wrong divisor"),
    ("length_buckets", _buckets_exclusive, "leaves out its upper edge"),
    ("length_buckets", _buckets_keep_beyond, "beyond the last edge"),
    ("length_buckets", _buckets_keep_empty, "empty bucket is kept"),
    ("diagonal_alignment", _diagonal_floor, "rounded down"),
    ("diagonal_alignment", _diagonal_over_t, "divides by T, not T - 1"),
    ("diagonal_alignment", _diagonal_to_s, "beyond the last source word"),
]


@pytest.mark.parametrize("name", check.__all__)
def test_a_correct_answer_passes(name):
    report = getattr(check, name)(CORRECT[name])
    assert report.passed, report.message
    assert report.message.startswith(f"✓ {name}: passes all ")
    assert "\n" not in report.message and len(report.message) < 80


@pytest.mark.parametrize("name", check.__all__)
def test_the_stub_is_not_written_yet(name):
    report = getattr(check, name)(stub)
    assert not report.passed and not report.written
    assert "not written yet" in report.message


@pytest.mark.parametrize(
    "name, wrong, cause", PLANTED, ids=[f"{n}-{w.__name__[1:]}" for n, w, _ in PLANTED]
)
def test_a_planted_mistake_fails_with_its_cause(name, wrong, cause):
    report = getattr(check, name)(wrong)
    assert not report.passed and report.written
    assert report.message.startswith(f"✗ {name} fails on case ")
    assert cause in report.message, report.message
    # a learner's words: no tensor dump, no traceback, a few lines at most
    assert "tensor(" not in report.message and "Traceback" not in report.message
    assert report.message.count("\n") <= 2 and len(report.message) < 600


def test_every_checker_has_two_planted_mistakes():
    planted = [name for name, _, _ in PLANTED]
    assert {
        name: planted.count(name) for name in check.__all__ if planted.count(name) < 2
    } == {}


def _library():
    """The library's own implementation of each exercise, behind the exercise's
    signature."""
    from types import SimpleNamespace

    from attnlab.course import compare
    from attnlab.data import batching
    from attnlab.infer import decoding
    from attnlab.measure import metrics
    from attnlab.nn import attention, multihead
    from attnlab.train import training

    def teacher_forcing(targets, *, bos_id, pad_id):
        batch = batching.PairDataset.collate(
            SimpleNamespace(bos_id=bos_id, pad_id=pad_id), [([0], t) for t in targets]
        )
        return batch.tgt_in, batch.tgt_out

    def greedy(model, src, src_len, *, bos_id, eos_id, max_len):
        out = decoding.greedy_decode(
            model, src, src_len, bos_id=bos_id, eos_id=eos_id, max_len=max_len
        )
        return [row[:n] for row, n in zip(out.tokens.tolist(), out.lengths.tolist())]

    def scores(query, key, *, W_q, W_k, v):
        layer = attention.AdditiveAttention(1, 1, 1)
        layer.W_q, layer.W_k, layer.v = W_q, W_k, v
        return layer.scores(query, layer.project_keys(key))

    def split(x, num_heads):
        layer = SimpleNamespace(num_heads=num_heads, d_k=x.shape[-1] // num_heads)
        return multihead.MultiHeadAttention.split_heads(layer, x)

    def cached(attention, x, cache):
        out, _, kv = attention.self_attend(x, cache=cache)
        return out, kv

    def merge(heads):  # the last line of MultiHeadAttention.attend
        return heads.transpose(1, 2).reshape(heads.shape[0], heads.shape[2], -1)

    return {
        "teacher_forcing": teacher_forcing,
        "masked_token_loss": lambda logits, targets, pad_id: (
            training.masked_cross_entropy(logits, targets, pad_id=pad_id)
        ),
        "gru_step": lambda x, h, cell: cell(x, h),
        "greedy_decode": greedy,
        "additive_scores": scores,
        "masked_softmax": attention.masked_softmax,
        "context_vector": lambda weights, value: weights @ value,
        "scaled_dot_product_attention": attention.scaled_dot_product_attention,
        "split_heads": split,
        "merge_heads": merge,
        "causal_mask": masks.causal_mask,
        "padding_mask": masks.padding_mask,
        "cached_self_attention": cached,
        "beam_step": decoding.top_candidates,
        "length_buckets": metrics.length_buckets,
        "diagonal_alignment": compare.diagonal,
    }


@pytest.mark.parametrize("name", check.__all__)
def test_the_library_itself_passes_its_checkers(name):
    report = getattr(check, name)(_library()[name])
    assert report.passed, report.message
