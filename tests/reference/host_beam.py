"""The course's first beam search, whose bookkeeping ran on the host, one sentence
and one candidate at a time, with Python lists. ``attnlab.infer.decoding.beam_search`` keeps
the same bookkeeping in tensors on the device; the tests check that both choose the
same translation, token for token. Kept only as that reference."""

from __future__ import annotations

import torch

from attnlab.infer.decoding import length_penalty, top_candidates


@torch.no_grad()
def host_beam_search(
    model,
    src,
    src_len,
    *,
    bos_id: int,
    eos_id: int,
    max_len: int,
    beam_size: int = 5,
    alpha: float = 0.6,
    pad_id: int = 0,
) -> list[list[int]]:
    model.eval()
    batch, device = src.shape[0], src.device
    rows = torch.arange(batch, device=device).repeat_interleave(beam_size)
    memory = model.encode(src, src_len).select(rows)
    scores = torch.full((batch, beam_size), float("-inf"), device=device)
    scores[:, 0] = 0.0
    prefixes: list[list[int]] = [[] for _ in range(batch * beam_size)]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    prev = torch.full((batch * beam_size,), bos_id, dtype=torch.long, device=device)
    state = None
    for _ in range(max_len):
        step = model.decode_step(prev, memory, state)
        log_probs = torch.log_softmax(step.logits.float(), dim=-1)
        top_scores, top_beams, top_tokens = top_candidates(
            scores, log_probs, 2 * beam_size
        )
        next_rows, next_tokens, next_scores = [], [], []
        for b, (row_scores, row_beams, row_tokens) in enumerate(
            zip(top_scores.tolist(), top_beams.tolist(), top_tokens.tolist())
        ):
            kept = []
            if len(finished[b]) < beam_size:
                for score, beam, token in zip(row_scores, row_beams, row_tokens):
                    if score == float("-inf"):
                        break
                    if token == eos_id:
                        prefix = prefixes[b * beam_size + beam] + [token]
                        finished[b].append(
                            (score / length_penalty(len(prefix), alpha), prefix)
                        )
                        if len(finished[b]) == beam_size:
                            break
                    else:
                        kept.append((b * beam_size + beam, token, score))
                        if len(kept) == beam_size:
                            break
            if len(finished[b]) >= beam_size:
                kept = []
            kept += [(b * beam_size, pad_id, float("-inf"))] * (beam_size - len(kept))
            for row, token, score in kept:
                next_rows.append(row)
                next_tokens.append(token)
                next_scores.append(score)
        index = torch.tensor(next_rows, device=device)
        prefixes = [prefixes[r] + [tok] for r, tok in zip(next_rows, next_tokens)]
        scores = torch.tensor(next_scores, device=device).view(batch, beam_size)
        prev = torch.tensor(next_tokens, device=device)
        state = step.state.select(index)
        if all(len(f) >= beam_size for f in finished):
            break
    best = []
    for b in range(batch):
        pool = list(finished[b]) or [
            (
                s / length_penalty(len(prefixes[b * beam_size + k]), alpha),
                prefixes[b * beam_size + k],
            )
            for k, s in enumerate(scores[b].tolist())
            if s > float("-inf")
        ]
        best.append(max(pool, key=lambda item: item[0])[1])
    return best
