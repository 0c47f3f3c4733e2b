"""Evaluating trained models on a data set's held-out splits, with
:mod:`attnlab.measure.metrics`.

Buckets by length come from the data set's own ``length_edges``, so a corpus of
your own is evaluated on its own terms.
"""

from __future__ import annotations

import torch
from torch import nn

from attnlab.data.corpus import detokenize
from attnlab.data.dataset import Seq2SeqData
from attnlab.infer.decoding import translate_tokens
from attnlab.measure.metrics import (
    bleu,
    bleu_by_length,
    chrf,
    exact_match,
    exact_match_by_length,
)
from attnlab.train.training import token_loss


def evaluate_translation(
    model: nn.Module,
    data: Seq2SeqData,
    split: str = "test",
    max_len: int = 20,
    beam_size: int = 1,
) -> dict:
    """Translations (greedy, or beam search) of every distinct source sentence of
    ``split``, scored by sacreBLEU against all of its references, overall and by source
    length."""
    sources, references = data.references(split)
    hypotheses = [
        detokenize(t)
        for t in translate_tokens(
            model,
            sources,
            data.src_vocab,
            data.tgt_vocab,
            max_len=max_len,
            beam_size=beam_size,
        )
    ]
    lengths = [len(s) for s in sources]
    by_length = bleu_by_length(hypotheses, references, lengths, data.length_edges)
    return {
        "bleu": bleu(hypotheses, references),
        "chrf": chrf(hypotheses, references),
        "bleu_by_length": by_length,
        "sources": [" ".join(s) for s in sources],
        "hypotheses": hypotheses,
        "references": references,
    }


def evaluate_exact_match(
    model: nn.Module, data: Seq2SeqData, split: str = "test"
) -> dict:
    """Exact match (a synthetic task's score: every token right), overall and by
    length."""
    pairs = data.split(split)
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    longest = max(len(t) for t in targets)
    predictions = translate_tokens(
        model, sources, data.src_vocab, data.tgt_vocab, max_len=longest + 5
    )
    lengths = [len(s) for s in sources]
    return {
        "exact_match": exact_match(predictions, targets),
        "by_length": exact_match_by_length(
            predictions, targets, lengths, data.length_edges, start=min(lengths)
        ),
    }


@torch.no_grad()
def tagging_accuracy(model: nn.Module, data: Seq2SeqData, split: str = "test") -> dict:
    """For a model that labels every source position (output length = input length):
    the fraction of sequences entirely right, and of positions right."""
    model.eval()
    device = next(model.parameters()).device
    exact = sequences = right = positions = 0
    for batch in data.loader(split, 512):
        batch = batch.to(device)
        logits = model(src=batch.src, src_len=batch.src_len, tgt_in=batch.tgt_in).logits
        correct, mask = logits.argmax(-1) == batch.tgt_out, batch.tgt_mask
        exact += int((correct | ~mask).all(-1).sum())
        sequences += len(batch)
        right += int((correct & mask).sum())
        positions += int(mask.sum())
    return {"exact_match": exact / sequences, "token_accuracy": right / positions}


@torch.no_grad()
def language_model_loss(
    model: nn.Module, data: Seq2SeqData, split: str = "val", *, causal: bool = True
) -> float:
    """Per-token cross-entropy of a next-token model (a
    :class:`~attnlab.models.selfattention.SelfAttentionTagger` that reads ``tgt_in``) on
    ``split``, with or without the causal mask, whatever the model was trained with."""
    model.eval()
    return token_loss(
        lambda batch: model.label(batch.tgt_in, causal=causal)[0],
        data.loader(split, 512),
        device=next(model.parameters()).device,
        pad_id=data.tgt_vocab.pad_id,
    )
