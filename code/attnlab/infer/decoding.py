"""Generating translations, one token at a time, for every model of the course.

Decoding needs only the contract of a :class:`~attnlab.models.contract.Generator`:
``encode(src, src_len)`` reads the source once into a memory, and
``decode_step(prev, memory, state)`` (``state`` is ``None`` at the first step)
returns a :class:`~attnlab.models.contract.Step`: the next-token logits (B, V), the
new state, and the attention weights over the source (B, S) or ``None``.
Beam search also selects batch rows of the memory and state (``select``).

Shapes: B batch, S source length, T output length, V vocabulary, k beam width.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from attnlab.data.batching import pad
from attnlab.data.corpus import detokenize, tokenize
from attnlab.data.vocab import Vocab


@dataclass
class Decoded:
    """The result of :func:`greedy_decode` for a batch.

    Shapes:
        tokens: (B, T) generated ids, ``<eos>`` included, ``<pad>`` after it.
        lengths: (B,) number of generated tokens, ``<eos>`` included.
        probs: (B, T) probability of each chosen token (0 after the end).
        top_ids, top_probs: (B, T, k) the k most likely tokens at each step.
        attention: (B, T, S) weights over the source, for models with attention.
    """

    tokens: torch.Tensor
    lengths: torch.Tensor
    probs: torch.Tensor
    top_ids: torch.Tensor | None = None
    top_probs: torch.Tensor | None = None
    attention: torch.Tensor | None = None


@torch.no_grad()
def greedy_decode(
    model,
    src: torch.Tensor,
    src_len: torch.Tensor,
    *,
    bos_id: int,
    eos_id: int,
    max_len: int,
    pad_id: int = 0,
    top_k: int = 0,
    stop_every: int | None = None,
    prefix: torch.Tensor | None = None,
) -> Decoded:
    """Pick the most likely token at every step, for a whole batch at once.

    Each sentence stops at its own ``<eos>``; the loop ends when all have
    stopped or after ``max_len`` tokens. A step never waits for the device: whether
    all have stopped is read every ``stop_every`` steps (default: every step on a CPU,
    where the read costs nothing; every 8 on a GPU, where it waits for the device),
    and the steps run past the last ``<eos>`` are cut off at the end.

    A ``prefix`` (B, P) of ids forces the first P tokens: the model reads them as its
    own, as in teacher forcing, and ``probs`` holds the probability it gave each.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, got {max_len}")
    forced = _check_prefix(prefix, src.shape[0], eos_id, max_len)
    stop_every = stop_every or _stop_every(src.device)
    model.eval()
    batch = src.shape[0]
    memory = model.encode(src, src_len)
    prev = torch.full((batch,), bos_id, dtype=torch.long, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    lengths = torch.full((batch,), max_len, dtype=torch.long, device=src.device)
    state, steps, probs, tops, attention = None, [], [], [], []
    for t in range(max_len):
        step = model.decode_step(prev, memory, state)
        state, weights = step.state, step.attention
        distribution = torch.softmax(step.logits.float(), dim=-1)  # (B, V)
        if t < forced:
            token = prefix[:, t]
            p = distribution.gather(1, token[:, None])[:, 0]
        else:
            p, token = distribution.max(dim=-1)
        token = token.masked_fill(finished, pad_id)
        steps.append(token)
        probs.append(p.masked_fill(finished, 0.0))
        if top_k:
            tops.append(distribution.topk(top_k, dim=-1))
        if weights is not None:
            attention.append(weights)
        just_ended = (token == eos_id) & ~finished
        lengths = torch.where(just_ended, t + 1, lengths)
        finished |= just_ended
        prev = token
        if (t + 1) % stop_every == 0 and bool(finished.all()):
            break
    length = int(lengths.max())  # the last step anyone needed

    def stacked(items):  # a list of (B, ...) steps -> (B, T, ...)
        return torch.stack(items[:length], dim=1) if items else None

    return Decoded(
        tokens=stacked(steps),
        lengths=lengths,
        probs=stacked(probs),
        top_ids=stacked([t.indices for t in tops]),
        top_probs=stacked([t.values for t in tops]),
        attention=stacked(attention),
    )


def _check_prefix(prefix, batch: int, eos_id: int, max_len: int) -> int:
    """How many tokens ``prefix`` forces (0 for none), once it is known to fit: (B, P)
    ids without ``<eos>``, P < max_len."""
    if prefix is None:
        return 0
    if prefix.dim() != 2 or prefix.shape[0] != batch:
        raise ValueError(
            f"a forced prefix is (B, P) = ({batch}, P) ids, got {tuple(prefix.shape)}"
        )
    if prefix.shape[1] >= max_len:
        raise ValueError(
            f"the forced prefix has {prefix.shape[1]} tokens; at most {max_len - 1} "
            f"can be forced (max_len is {max_len})"
        )
    if bool((prefix == eos_id).any()):
        raise ValueError("a forced prefix cannot hold <eos>: only words are forced")
    return prefix.shape[1]


def _stop_every(device: torch.device) -> int:
    """How often a decoding loop reads whether it is done: reading a tensor on a CPU
    waits for nothing, on an accelerator it waits for every step queued so far."""
    return 1 if device.type == "cpu" else 8


def translate_tokens(
    model,
    sources: list[list[str]],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    *,
    max_len: int = 30,
    batch_size: int = 256,
    beam_size: int = 1,
    alpha: float = 0.6,
    device: torch.device | str | None = None,
) -> list[list[str]]:
    """Translations of many tokenised sentences, batched by length, in input order:
    greedy, or with :func:`beam_search` when ``beam_size`` > 1."""
    device = device or next(model.parameters()).device
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results: list[list[str]] = [[] for _ in sources]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids = [src_vocab.encode(sources[i]) + [src_vocab.eos_id] for i in chunk]
        src = pad(ids, src_vocab.pad_id).to(device)
        src_len = torch.tensor([len(s) for s in ids], device=device)
        if beam_size > 1:
            rows = beam_search(
                model,
                src,
                src_len,
                bos_id=tgt_vocab.bos_id,
                eos_id=tgt_vocab.eos_id,
                max_len=max_len,
                beam_size=beam_size,
                alpha=alpha,
                pad_id=tgt_vocab.pad_id,
            )
        else:
            rows = greedy_decode(
                model,
                src,
                src_len,
                bos_id=tgt_vocab.bos_id,
                eos_id=tgt_vocab.eos_id,
                max_len=max_len,
                pad_id=tgt_vocab.pad_id,
            ).tokens.tolist()
        for i, row in zip(chunk, rows):
            results[i] = tgt_vocab.decode(row)
    return results


@dataclass
class Translation:
    """One sentence translated by :func:`translate`, with what the model saw and
    chose."""

    source: list[str]  # source tokens as the model saw them (after truncation)
    tokens: list[str]  # output tokens, without <eos>
    text: str  # the output, detokenised
    probs: list[float]  # probability of each output token (and of <eos>)
    candidates: list[list[tuple[str, float]]]  # top-k (token, probability) at each step
    unknown: list[str]  # source words the vocabulary lacks (read as <unk>)
    truncated: bool  # whether the source was cut to max_src_len tokens
    attention: torch.Tensor | None = None  # (T, S) for models with attention
    # Every layer's and head's weights by name (``encoder``, ``decoder_self``,
    # ``cross``), where an exported graph gives them (the website's Transformer)
    layers: dict = field(default_factory=dict)


def translate(
    model,
    sentence: str,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    *,
    max_len: int = 30,
    max_src_len: int = 50,
    top_k: int = 5,
) -> Translation:
    """Translate one raw sentence.

    Behaviour on awkward input, by design:

    * an empty or blank sentence raises ``ValueError``;
    * words the vocabulary lacks are read as ``<unk>`` and listed in ``unknown``;
    * a sentence longer than ``max_src_len`` tokens is cut to its first
      ``max_src_len`` tokens, with a ``UserWarning`` (and ``truncated=True``).
    """
    source = read_source(sentence, src_vocab, max_src_len, model=model)
    out = greedy_decode(
        model,
        source.src,
        source.src_len,
        bos_id=tgt_vocab.bos_id,
        eos_id=tgt_vocab.eos_id,
        max_len=max_len,
        pad_id=tgt_vocab.pad_id,
        top_k=min(top_k, len(tgt_vocab)),
    )
    n = int(out.lengths[0])
    produced = tgt_vocab.decode(out.tokens[0, :n].tolist())
    candidates = []
    if out.top_ids is not None:
        for step in range(n):
            candidates.append(
                [
                    (tgt_vocab.itos[i], float(p))
                    for i, p in zip(
                        out.top_ids[0, step].tolist(), out.top_probs[0, step].tolist()
                    )
                ]
            )
    return Translation(
        source=source.tokens,
        tokens=produced,
        text=detokenize(produced),
        probs=out.probs[0, :n].tolist(),
        candidates=candidates,
        unknown=source.unknown,
        truncated=source.truncated,
        attention=out.attention[0, :n].cpu() if out.attention is not None else None,
    )


def source_tokens(
    sentence: str, max_src_len: int, *, stacklevel: int = 2
) -> tuple[list[str], bool]:
    """A raw sentence's tokens as a model reads them, cut to ``max_src_len`` (with a
    ``UserWarning`` at ``stacklevel`` above the function that calls this one), and
    whether they were cut; an empty sentence is refused."""
    if not isinstance(sentence, str):
        raise TypeError(f"translate() takes a string, got {type(sentence).__name__}")
    tokens = tokenize(sentence)
    if not tokens:
        raise ValueError("cannot translate an empty sentence")
    truncated = len(tokens) > max_src_len
    if truncated:
        warnings.warn(
            f"the sentence has {len(tokens)} tokens; "
            f"only its first {max_src_len} are translated "
            "(max_src_len)",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
    return tokens[:max_src_len], truncated


@dataclass
class Source:
    """One raw sentence as a model reads it (:func:`read_source`)."""

    tokens: list[str]  # its tokens, cut to max_src_len
    truncated: bool  # whether they were cut
    unknown: list[str]  # the tokens the vocabulary lacks (read as <unk>)
    src: torch.Tensor  # (1, S) their ids, <eos> last, on the model's device
    src_len: torch.Tensor  # (1,) S


def read_source(
    sentence: str, src_vocab: Vocab, max_src_len: int, *, model, stacklevel: int = 2
) -> Source:
    """``sentence`` as one batch row for ``model``: what :func:`translate`,
    :func:`attnlab.infer.beams.beam_translate` and
    :func:`attnlab.infer.forcing.force_prefix` all decode (see :func:`source_tokens`
    for an empty or too long sentence)."""
    tokens, truncated = source_tokens(sentence, max_src_len, stacklevel=stacklevel + 1)
    device = next(model.parameters()).device
    ids = src_vocab.encode(tokens) + [src_vocab.eos_id]
    return Source(
        tokens=tokens,
        truncated=truncated,
        unknown=[t for t in tokens if t not in src_vocab],
        src=torch.tensor([ids], device=device),
        src_len=torch.tensor([len(ids)], device=device),
    )


def length_penalty(length: int, alpha: float) -> float:
    """Wu et al. (2016)'s length normalisation, ((5 + length) / 6) ** alpha (1 when
    alpha = 0)."""
    return ((5 + length) / 6) ** alpha


def top_candidates(
    scores: torch.Tensor, log_probs: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of beam search: the ``n`` best continuations of each sentence's
    hypotheses, over all of its beams and every next token.

    Shapes:
        scores: (B, k) log-probability of each hypothesis so far (``-inf`` for none).
        log_probs: (B * k, V) next-token log-probabilities, hypothesis by hypothesis
            (sentence 0's k beams first).
        returns the candidates' scores (B, n), best first; the beam each extends
        (B, n), in 0..k-1; and its next token (B, n).
    """
    batch, beams = scores.shape
    vocab = log_probs.shape[-1]
    candidates = scores[:, :, None] + log_probs.view(batch, beams, vocab)  # (B, k, V)
    flat = candidates.view(batch, beams * vocab)  # index beam * V + token
    top, index = flat.topk(min(n, beams * vocab), dim=-1)
    return top, index // vocab, index % vocab


@torch.no_grad()
def beam_search(
    model,
    src: torch.Tensor,
    src_len: torch.Tensor,
    *,
    bos_id: int,
    eos_id: int,
    max_len: int,
    beam_size: int = 5,
    alpha: float = 0.6,
    pad_id: int = 0,
    stop_every: int | None = None,
    trace: list | None = None,
    prefix: torch.Tensor | None = None,
) -> list[list[int]]:
    """The most likely translations under a beam of ``beam_size`` hypotheses per
    sentence.

    Hypotheses are ranked by log-probability divided by :func:`length_penalty`
    (``alpha=0``: raw log-probability, which favours short outputs). At each step
    a sentence reads its best candidates in order, and stops at the first
    impossible one, or once ``beam_size`` have gone on, or once it has
    ``beam_size`` ended hypotheses: it is then done, and the best of those ends
    is its translation (a beam of 1 gives exactly the greedy one). A sentence
    with no ended hypothesis after ``max_len`` steps takes its best live one.
    Returns, per sentence, the ids of the translation (``<eos>`` included).

    All the bookkeeping stays in tensors on the model's device: a step never waits
    for it (whether all are done is read every ``stop_every`` steps, as in
    :func:`greedy_decode`). Given a ``trace`` list, each step appends its
    :class:`BeamRecord` to it (:func:`attnlab.infer.beams.beam_translate` reads it).

    A ``prefix`` (B, P) of ids forces the first P tokens, as in :func:`greedy_decode`:
    at those steps each sentence has one candidate, its forced token, whose
    log-probability counts in the hypotheses' scores as any other token's.
    """
    if beam_size < 1 or max_len < 1:
        raise ValueError(
            f"beam_size and max_len must be at least 1, got {beam_size}, {max_len}"
        )
    forced = _check_prefix(prefix, src.shape[0], eos_id, max_len)
    stop_every = stop_every or _stop_every(src.device)
    model.eval()
    batch, k, device = src.shape[0], beam_size, src.device
    rows = torch.arange(batch, device=device).repeat_interleave(k)  # (B * k,)
    memory = model.encode(src, src_len).select(rows)
    beam = _Beam.start(batch, k, bos_id, pad_id, device)
    ended = _Ended.empty(batch, k, max_len, pad_id, device)
    state = None
    for t in range(max_len):
        step = model.decode_step(beam.last, memory, state)
        log_probs = torch.log_softmax(step.logits.float(), dim=-1)  # (B * k, V)
        if t < forced:  # only the forced token: every other is impossible
            token = prefix[:, t].repeat_interleave(k)[:, None]  # (B * k, 1)
            log_probs = torch.full_like(log_probs, float("-inf")).scatter_(
                1, token, log_probs.gather(1, token)
            )
        # 2k candidates: even if k of them end with <eos>, k others go on
        top, parent, token = top_candidates(beam.scores, log_probs, 2 * k)  # (B, n)
        row, ends, live = beam.first + parent, token == eos_id, top > float("-inf")
        # Read best first; candidate j is read if every one before it was and none
        # of them made the sentence stop (k ended, or k going on).
        ends_before = _count_before(ends & live)
        goes_on_before = _count_before(~ends & live)
        read = live & (ended.count[:, None] + ends_before < k) & (goes_on_before < k)
        written = torch.cat(
            [beam.prefixes[row.flatten()].view(*row.shape, t), token[..., None]], dim=-1
        )  # (B, n, t + 1)
        normalised = top.double() / length_penalty(t + 1, alpha)
        ended.add(read & ends, ends_before, normalised, written)
        # the ones that go on are the next beam; a sentence that is done idles
        goes_on = read & ~ends & (ended.count < k)[:, None]
        if trace is not None:
            trace.append(
                BeamRecord(read, parent, token, top, normalised, ends, goes_on)
            )
        index = beam.advance(goes_on, goes_on_before, row, token, top)
        state = step.state.select(index)
        if (t + 1) % stop_every == 0 and bool((ended.count >= k).all()):
            break
    return ended.best_or(beam)


@dataclass
class BeamRecord:
    """One step of :func:`beam_search`: its best candidates, best first, as (B, n)
    tensors. Candidate j extends beam ``parent`` (0..k-1, the places of the step
    before) with ``token``; ``logp`` is its log-probability, ``score`` that divided by
    :func:`length_penalty`. Only the ``read`` ones count: of those, the ``ends`` joined
    the ended hypotheses, and the ``goes_on`` ones (in order) are the next beam."""

    read: torch.Tensor
    parent: torch.Tensor
    token: torch.Tensor
    logp: torch.Tensor
    score: torch.Tensor
    ends: torch.Tensor
    goes_on: torch.Tensor


@dataclass
class _Beam:
    """The live hypotheses, ``k`` a sentence: row ``b * k + j`` is sentence ``b``'s
    ``j``-th, with its log-probability ``scores[b, j]`` (-inf: no hypothesis)."""

    scores: torch.Tensor  # (B, k)
    prefixes: torch.Tensor  # (B * k, t) the tokens so far, <bos> left out
    last: torch.Tensor  # (B * k,) the token the next step reads
    first: torch.Tensor  # (B, 1) each sentence's row 0
    pad_id: int

    @classmethod
    def start(cls, batch, k, bos_id, pad_id, device) -> "_Beam":
        scores = torch.full((batch, k), float("-inf"), device=device)
        scores[:, 0] = 0.0  # only one live hypothesis at the start
        return cls(
            scores=scores,
            prefixes=torch.full(
                (batch * k, 0), pad_id, dtype=torch.long, device=device
            ),
            last=torch.full((batch * k,), bos_id, dtype=torch.long, device=device),
            first=torch.arange(batch, device=device)[:, None] * k,
            pad_id=pad_id,
        )

    def advance(self, goes_on, before, row, token, top) -> torch.Tensor:
        """Candidate (b, j) that goes on takes place ``before[b, j]`` of the next beam
        (one scatter a tensor; what does not go on is written to an extra column, then
        dropped); empty places keep row 0 and score -inf. Returns the rows the next
        beam continues, for the decoder's state."""
        batch, k = self.scores.shape
        place = torch.where(goes_on, before, k)  # (B, n)

        def placed(values, fill):
            blank = torch.full(
                (batch, k + 1), fill, dtype=values.dtype, device=values.device
            )
            return blank.scatter_(1, place, values)[:, :k]

        index = self.first.repeat(1, k + 1).scatter_(1, place, row)[:, :k].flatten()
        self.last = placed(token, self.pad_id).flatten()
        self.scores = placed(top, float("-inf"))
        self.prefixes = torch.cat([self.prefixes[index], self.last[:, None]], dim=1)
        return index


@dataclass
class _Ended:
    """The ended hypotheses, ``k`` at most a sentence, plus one column where what is
    not kept is written (so that every write is one scatter, with no host decision)."""

    scores: torch.Tensor  # (B, k + 1) length-normalised, float64
    tokens: torch.Tensor  # (B, k + 1, max_len)
    length: torch.Tensor  # (B, k + 1)
    count: torch.Tensor  # (B,) how many so far

    @classmethod
    def empty(cls, batch, k, max_len, pad_id, device) -> "_Ended":
        return cls(
            scores=torch.full(
                (batch, k + 1), float("-inf"), dtype=torch.float64, device=device
            ),
            tokens=torch.full(
                (batch, k + 1, max_len), pad_id, dtype=torch.long, device=device
            ),
            length=torch.zeros((batch, k + 1), dtype=torch.long, device=device),
            count=torch.zeros(batch, dtype=torch.long, device=device),
        )

    def add(self, joins, before, scores, written) -> None:
        """Candidates that end (``joins``, (B, n)) join in order, after the ``count``
        already there; ``written`` (B, n, t + 1) are their tokens."""
        k, t = self.scores.shape[1] - 1, written.shape[-1]
        slot = torch.where(joins, self.count[:, None] + before, k)  # (B, n)
        self.scores.scatter_(1, slot, scores)
        self.length.scatter_(1, slot, torch.full_like(slot, t))
        self.tokens[..., :t].scatter_(1, slot[..., None].expand(-1, -1, t), written)
        self.count += joins.sum(dim=1)

    def best_or(self, beam: _Beam) -> list[list[int]]:
        """Each sentence's best ended hypothesis (the first of equals), or if none
        ended, its best live one."""
        k = self.scores.shape[1] - 1
        best_ended = self.scores[:, :k].argmax(dim=1).tolist()
        best_live = beam.scores.argmax(dim=1).tolist()
        has_ended = (self.count > 0).tolist()
        tokens, length = self.tokens.tolist(), self.length.tolist()
        live = beam.prefixes.view(len(has_ended), k, -1).tolist()
        return [
            tokens[b][e][: length[b][e]] if has_ended[b] else live[b][j]
            for b, (e, j) in enumerate(zip(best_ended, best_live))
        ]


def _count_before(flags: torch.Tensor) -> torch.Tensor:
    """For each position of (B, n) flags, how many flags before it (in its row) are
    set."""
    counts = flags.long()
    return counts.cumsum(dim=1) - counts
