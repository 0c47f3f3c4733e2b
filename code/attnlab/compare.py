"""The same measurements for every model of the course, so that chapters compare like with like.

Chapter 5 measures its three translation models with :func:`compare_translation`
and records the result; chapter 6 reads that record, or measures again when it
runs on its own. Training memory is measured the same way on every device: the
bytes of the tensors a training step keeps for its backward pass, plus the
parameters, their gradients and Adam's two moments.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch
from torch import nn

from .batching import Batch
from .data import Seq2SeqData
from .experiments import evaluate_translation
from .training import logits_of, masked_cross_entropy


def compare_translation(models: Mapping[str, tuple[nn.Module, dict]], data: Seq2SeqData, *,
                        split: str = "test", beam_size: int = 5) -> dict[str, dict]:
    """For each named ``(model, training metadata)``: parameters, training time, held-out
    BLEU greedy and with a beam, BLEU by source length, and decoding speed (sentences per
    second over the whole split, batched), measured on the model's device."""
    table = {}
    for name, (model, meta) in models.items():
        row = {"parameters": meta["parameters"], "train_seconds": meta["seconds"],
               "device": str(next(model.parameters()).device)}
        for beam, suffix in ((1, ""), (beam_size, f"_beam{beam_size}")):
            start = time.perf_counter()
            scores = evaluate_translation(model, data, split, beam_size=beam)
            seconds = time.perf_counter() - start
            row[f"test_bleu{suffix}"] = scores["bleu"]
            row[f"sentences_per_second{suffix}"] = len(scores["sources"]) / seconds
            if beam == 1:
                row["bleu_by_length"] = scores["bleu_by_length"]
                row["hypotheses"] = scores["hypotheses"]
        table[name] = row
    return table


def training_memory(model: nn.Module, batch: Batch) -> dict[str, int]:
    """Bytes a training step on ``batch`` needs: ``activations`` (the tensors autograd keeps
    for the backward pass, each storage counted once) and ``state`` (parameters, gradients
    and Adam's two moments, 4 x the parameters). On CUDA, also the allocator's peak."""
    device = next(model.parameters()).device
    batch = batch.to(device)
    storages: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        logits = logits_of(model(src=batch.src, src_len=batch.src_len, tgt_in=batch.tgt_in))
        loss = masked_cross_entropy(logits, batch.tgt_out)
    loss.backward()
    model.zero_grad(set_to_none=True)
    activations = sum(size for ptr, size in storages.items() if ptr not in parameters)
    state = 4 * sum(p.numel() * p.element_size() for p in model.parameters())
    result = {"activations": activations, "state": state}
    if device.type == "cuda":
        result["cuda_peak"] = torch.cuda.max_memory_allocated(device)
    return result
