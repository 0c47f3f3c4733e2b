"""The same measurements for every model of the course, so that chapters compare like
with like.

Chapter 5 measures its three translation models with :func:`compare_translation`
and records the result; chapter 6 reads that record, or measures again when it
runs on its own. Training memory is measured the same way on every device: the
bytes of the tensors a training step keeps for its backward pass, plus the
parameters, their gradients and Adam's two moments.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from attnlab.core.runtime import Profile
from attnlab.data.batching import Batch, random_batch
from attnlab.data.dataset import Seq2SeqData
from attnlab.data.vocab import EOS, Vocab
from attnlab.infer.inspection import KINDS, layer_attention, replay_inputs
from attnlab.measure.evaluation import evaluate_translation
from attnlab.measure.results import load_results
from attnlab.measure.timing import timed
from attnlab.models.bahdanau import AttentionEncoderDecoder
from attnlab.models.rnn import EncoderDecoder
from attnlab.models.transformer import Transformer
from attnlab.recipes.experiments import Budget, Sizes, TransformerSizes, train_model
from attnlab.train.training import batch_loss

# The models of chapters 2, 3 and 5.
MODEL_NAMES = ("GRU encoder-decoder", "Bahdanau attention", "Transformer")


def compare_translation(
    models: Mapping[str, tuple[nn.Module, dict]],
    data: Seq2SeqData,
    *,
    split: str = "test",
    beam_size: int = 5,
) -> dict[str, dict]:
    """For each named ``(model, training metadata)``: parameters, training time,
    held-out BLEU and chrF, greedy and with a beam, the translations of both, BLEU by
    source length, and decoding speed (sentences per second over the whole split,
    batched), measured on the model's device."""
    table = {}
    for name, (model, meta) in models.items():
        row = {
            "parameters": meta["parameters"],
            "train_seconds": meta["seconds"],
            "device": str(next(model.parameters()).device),
        }
        for beam, suffix in ((1, ""), (beam_size, f"_beam{beam_size}")):
            scores, seconds = timed(
                lambda: evaluate_translation(model, data, split, beam_size=beam),
                device=row["device"],
            )
            row[f"test_bleu{suffix}"] = scores["bleu"]
            row[f"test_chrf{suffix}"] = scores["chrf"]
            row[f"sentences_per_second{suffix}"] = len(scores["sources"]) / seconds
            row[f"hypotheses{suffix}"] = scores["hypotheses"]
            if beam == 1:
                row["bleu_by_length"] = scores["bleu_by_length"]
        table[name] = row
    return table


def across_seeds(
    builders: Mapping[str, tuple[str, Callable[[], nn.Module]]],
    data: Seq2SeqData,
    plan: Budget,
    *,
    seeds: Sequence[int],
    profile: Profile,
    device=None,
) -> dict[str, list[dict]]:
    """Each named ``(cache name, build)`` trained once per seed with ``plan`` (the seed
    sets the initial weights, the dropout and the order of the batches; the data and the
    budget stay the same), and scored on the held-out test set: per model, one row per
    seed with its greedy test BLEU and chrF and its training time."""
    if len(set(seeds)) < 2:
        raise ValueError(f"a spread needs at least two different seeds, got {seeds}")
    found: dict[str, list[dict]] = {}
    for name, (key, build) in builders.items():
        found[name] = []
        for seed in seeds:
            model, meta = train_model(
                key, build, data, plan, profile=profile, seed=seed, device=device
            )
            scores = evaluate_translation(model, data)
            found[name].append(
                {
                    "seed": seed,
                    "test_bleu": scores["bleu"],
                    "test_chrf": scores["chrf"],
                    "train_seconds": meta["seconds"],
                    "from_cache": meta["from_cache"],
                }
            )
    return found


def seed_spread(rows: Sequence[dict], key: str = "test_bleu") -> dict[str, float]:
    """Mean, sample standard deviation, lowest and highest of ``key`` over the seeds of
    :func:`across_seeds`."""
    values = torch.tensor([row[key] for row in rows], dtype=torch.float64)
    if len(values) < 2:
        raise ValueError("a spread needs at least two runs")
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "low": float(values.min()),
        "high": float(values.max()),
    }


def training_memory(model: nn.Module, batch: Batch) -> dict[str, int]:
    """Bytes a training step on ``batch`` needs: ``activations`` (the tensors autograd
    keeps for the backward pass, each storage counted once) and ``state`` (parameters,
    gradients and Adam's two moments, 4 x the parameters). On CUDA, also the allocator's
    peak."""
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
        loss = batch_loss(model, batch)
    loss.backward()
    model.zero_grad(set_to_none=True)
    activations = sum(size for ptr, size in storages.items() if ptr not in parameters)
    state = 4 * sum(p.numel() * p.element_size() for p in model.parameters())
    result = {"activations": activations, "state": state}
    if device.type == "cuda":
        result["cuda_peak"] = torch.cuda.max_memory_allocated(device)
    return result


def recorded(
    chapter: str, key: str, *, profile: Profile
) -> tuple[object, str] | tuple[None, None]:
    """``(value, provenance)`` of the result ``key`` that ``chapter`` recorded in this
    ``profile``, or ``(None, None)`` when it has not (never run, or run in another
    profile)."""
    try:
        record = load_results(chapter)
    except FileNotFoundError:
        return None, None
    if record.get("profile") != profile.name or key not in record.get("results", {}):
        return None, None
    day = record["recorded_at"][:10]
    return record["results"][key], f"recorded by {chapter} on {day}"


def timing_models(vocab: int = 1000, width: int = 256) -> dict[str, nn.Module]:
    """The three architectures at the same width (hidden state / model width) and
    vocabulary, untrained, for timing: a training step's cost does not depend on the
    weights."""
    gru, bahdanau, transformer = MODEL_NAMES
    rnn, sizes = Sizes.at_width(width), TransformerSizes.at_width(width)
    return {
        gru: EncoderDecoder(
            vocab,
            vocab,
            embed_size=rnn.embed,
            hidden_size=rnn.hidden,
            proj_size=rnn.proj,
            dropout=rnn.dropout,
        ),
        bahdanau: AttentionEncoderDecoder(
            vocab,
            vocab,
            embed_size=rnn.embed,
            hidden_size=rnn.hidden,
            attention_size=rnn.attention,
            proj_size=rnn.proj,
            dropout=rnn.dropout,
        ),
        transformer: Transformer(
            vocab,
            vocab,
            d_model=sizes.d_model,
            num_heads=sizes.num_heads,
            num_layers=sizes.num_layers,
            d_ff=sizes.d_ff,
            dropout=0.0,
            max_len=1024,
        ),
    }


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log(y) against log(x): 1 means y grows in proportion to
    x."""
    x, y = (
        torch.tensor(xs, dtype=torch.float64).log(),
        torch.tensor(ys, dtype=torch.float64).log(),
    )
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


@torch.no_grad()
def shared_alignment(
    bahdanau: nn.Module,
    transformer: nn.Module,
    sentence: str,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
) -> dict:
    """Both models' attention over the source for the same output: the Transformer's
    greedy translation of ``sentence``, fed to Bahdanau's model by teacher forcing.

    Returns the source and target tokens, ``bahdanau`` (T, S) and ``transformer``: the
    cross-attention of every layer, each (h, T, S)."""
    attention = layer_attention(transformer, sentence, src_vocab, tgt_vocab)
    bahdanau.eval()
    alpha = bahdanau(
        **replay_inputs(
            attention.source,
            attention.target,
            src_vocab,
            tgt_vocab,
            next(bahdanau.parameters()).device,
        )
    ).attention
    return {
        "source": attention.source,
        "target": attention.target,
        "bahdanau": alpha[0].cpu(),
        "transformer": attention.weights[KINDS[2]],
    }


def alignment_agreement(
    bahdanau: nn.Module,
    transformer: nn.Module,
    sentences: Sequence[str],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
) -> dict:
    """How often the source word Bahdanau's model attends to most is also the one the
    Transformer's cross-attention attends to most, over every output word (``<eos>``
    excluded) of ``sentences``: for each layer's mean of heads, for each head
    (``heads``, by layer) and for its best head. Two baselines to beat:
    ``diagonal``, a monotone alignment that walks through the source words at an even
    pace, and ``chance``, a source position drawn at random."""
    rows, diagonal_hits, chance = 0, 0, 0.0
    mean_hits: list[int] = []
    head_hits: list[list[int]] = []
    for sentence in sentences:
        shared = shared_alignment(bahdanau, transformer, sentence, src_vocab, tgt_vocab)
        words = len(shared["target"]) - (shared["target"][-1] == EOS)
        if words == 0:
            continue
        peak = shared["bahdanau"][:words].argmax(-1)
        diagonal_hits += int((diagonal(words, len(shared["source"]) - 1) == peak).sum())
        chance += words / len(shared["source"])
        for i, layer in enumerate(shared["transformer"]):
            if len(mean_hits) <= i:
                mean_hits.append(0)
                head_hits.append([0] * layer.shape[0])
            mean_hits[i] += int((layer[:, :words].mean(0).argmax(-1) == peak).sum())
            for h in range(layer.shape[0]):
                head_hits[i][h] += int((layer[h, :words].argmax(-1) == peak).sum())
        rows += words
    if rows == 0:
        raise ValueError("no output words to compare")
    return {
        "words": rows,
        "layer_mean": [hits / rows for hits in mean_hits],
        "best_head": [max(hits) / rows for hits in head_hits],
        "heads": [[hit / rows for hit in hits] for hits in head_hits],
        "diagonal": diagonal_hits / rows,
        "chance": chance / rows,
    }


def diagonal(target_words: int, source_words: int) -> torch.Tensor:
    """(T,) the source position a monotone alignment at an even pace gives each output
    word: the first to the first, the last to the last."""
    steps = torch.arange(target_words, dtype=torch.float64)
    return (steps * (source_words - 1) / max(target_words - 1, 1)).round().long()


def graph_depth(output: torch.Tensor) -> int:
    """The longest chain of operations autograd recorded to compute ``output``:
    operations that had to run one after another, however many processors there were."""
    if output.grad_fn is None:
        raise ValueError(
            "the tensor has no autograd history (computed without gradients?)"
        )
    depth: dict[object, int] = {}
    stack = [(output.grad_fn, False)]
    while stack:
        node, expanded = stack.pop()
        if node in depth:
            continue
        children = [child for child, _ in node.next_functions if child is not None]
        if expanded:
            depth[node] = 1 + max((depth[c] for c in children), default=0)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if c not in depth)
    return depth[output.grad_fn]


def sequential_depth(
    model: nn.Module, length: int, *, vocab: int, batch_size: int = 2
) -> int:
    """:func:`graph_depth` of a training loss on random sequences of ``length`` tokens
    (source and target), on the CPU, where PyTorch records every step of a
    recurrence (a copy of ``model`` there if it is elsewhere: ``model`` itself stays
    where it is)."""
    batch = random_batch(
        vocab, vocab, length, batch_size, generator=torch.Generator().manual_seed(0)
    )
    if any(p.device.type != "cpu" for p in model.parameters()):
        model = copy.deepcopy(model).cpu()
    was_training = model.training
    try:
        return graph_depth(batch_loss(model.train(), batch))
    finally:
        model.train(was_training)


def training_flops(
    model: nn.Module, length: int, *, vocab: int, batch_size: int
) -> int:
    """Floating-point operations of one training step (forward and backward, matrix
    products of the dense layers and of attention) on sequences of ``length`` tokens,
    counted by ``torch.utils.flop_counter.FlopCounterMode``."""
    batch = random_batch(
        vocab,
        vocab,
        length,
        batch_size,
        generator=torch.Generator().manual_seed(0),
        device=next(model.parameters()).device,
    )
    model.train()
    with FlopCounterMode(display=False) as counter:
        batch_loss(model, batch).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()
