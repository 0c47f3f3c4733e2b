"""No step waits for the device: a training step, and each step of greedy decoding
and of beam search, for every registered model, make no call that reads a tensor back
on the host (``.item()``, ``.tolist()``, ``bool()``, ``.cpu()``, ``nonzero``, a
boolean index). On a GPU each such read stops the host until the device has finished
all the work queued before it. Counted on the CPU by ``benchmarks/common.host_reads``
(``torch.profiler`` for the operators, wrapped tensor methods for the rest), which
``benchmarks/bench_steps.py`` uses too."""

from __future__ import annotations

import sys

import pytest
import torch
from helpers import ROOT

from attnlab.core import runtime
from attnlab.data import batching
from attnlab.infer import decoding
from attnlab.models import contract
from attnlab.models.bahdanau import AttentionEncoderDecoder
from attnlab.models.rnn import EncoderDecoder
from attnlab.models.selfattention import SelfAttentionTagger
from attnlab.models.transformer import Transformer
from attnlab.train.training import Trainer

sys.path.insert(0, str(ROOT / "benchmarks"))
from common import host_reads  # noqa: E402

SRC_VOCAB, TGT_VOCAB = 20, 7  # a small target vocabulary, so that <eos> comes
BOS, EOS = 1, 2
BUILDERS = {
    "EncoderDecoder": lambda: EncoderDecoder(
        SRC_VOCAB, TGT_VOCAB, embed_size=8, hidden_size=16, proj_size=8
    ),
    "AttentionEncoderDecoder": lambda: AttentionEncoderDecoder(
        SRC_VOCAB,
        TGT_VOCAB,
        embed_size=8,
        hidden_size=16,
        attention_size=8,
        proj_size=8,
    ),
    "Transformer": lambda: Transformer(
        SRC_VOCAB, TGT_VOCAB, d_model=16, num_heads=2, num_layers=2, d_ff=32
    ),
    "SelfAttentionTagger": lambda: SelfAttentionTagger(
        TGT_VOCAB, TGT_VOCAB, d_model=16, num_heads=2, causal=True, reads="tgt_in"
    ),
}


def _batch() -> batching.Batch:
    torch.manual_seed(1)
    src_len, tgt_len = torch.tensor([7, 3, 5, 1]), torch.tensor([5, 2, 4, 3])
    src = torch.randint(4, SRC_VOCAB, (4, 7)) * (torch.arange(7) < src_len[:, None])
    tgt = torch.randint(3, TGT_VOCAB, (4, 5)) * (torch.arange(5) < tgt_len[:, None])
    tgt_in = torch.cat([torch.full((4, 1), BOS), tgt[:, :-1]], dim=1)
    return batching.Batch(src, src_len, tgt_in, tgt, tgt_len)


def test_the_counter_sees_every_kind_of_read():
    x = torch.randn(6)
    for read, expected in [
        (lambda: x.sum().item(), "aten::item"),
        (lambda: x.tolist(), "Tensor.tolist"),
        (lambda: bool(x.sum() > 0), "aten::is_nonzero"),
        (lambda: x[x > 0], "aten::nonzero"),
        (lambda: x.cpu(), "Tensor.cpu"),
        (lambda: int(x.argmax()), "Tensor.__int__"),
    ]:
        with host_reads() as counts:
            read()
        assert counts[expected] >= 1, expected
    # Adam's loop implementation reads each parameter's step count: the counter sees it
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), foreach=False)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    with host_reads() as counts:
        optimizer.step()
    assert counts["aten::item"] >= 2


def test_every_registered_model_is_covered():
    ours = {
        name
        for name, cls in contract.MODELS.items()
        if cls.__module__.startswith("attnlab.")
    }  # tests register stand-ins
    assert set(BUILDERS) == ours


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_training_step_reads_nothing_back(name):
    runtime.seed_everything(0)
    trainer = Trainer(BUILDERS[name](), lr=1e-3, device="cpu", label_smoothing=0.1)
    batch = _batch()
    trainer.step(batch)  # the first step creates Adam's state
    with host_reads() as counts:
        result = trainer.step(batch)
    assert dict(counts) == {}
    # and it did train: a real loss and gradient came out
    assert torch.isfinite(result.loss) and result.grad_norm > 0


def _generators():
    return [
        name
        for name in sorted(BUILDERS)
        if isinstance(BUILDERS[name](), contract.Generator)
    ]


@pytest.mark.parametrize("name", _generators())
def test_a_decoding_step_reads_nothing_back(name):
    runtime.seed_everything(0)
    model, batch = BUILDERS[name]().eval(), _batch()
    with torch.no_grad():
        memory = model.encode(batch.src, batch.src_len)
        first = model.decode_step(torch.full((4,), BOS), memory, None)
        with host_reads() as counts:
            step = model.decode_step(first.logits.argmax(-1), memory, first.state)
            step.state.select(torch.tensor([3, 3, 0, 1]))  # what beam search does
    assert dict(counts) == {} and step.logits.shape == (4, TGT_VOCAB)


@pytest.mark.parametrize("search", ["greedy", "beam"])
@pytest.mark.parametrize("name", _generators())
def test_decoding_reads_back_only_at_the_end(name, search):
    """A loop of L steps that reads whether it is done only at its last one makes the
    same reads whatever L is: none of them in a step."""
    runtime.seed_everything(0)
    model, batch = BUILDERS[name]().eval(), _batch()

    def decode(steps: int):
        if search == "greedy":
            return decoding.greedy_decode(
                model,
                batch.src,
                batch.src_len,
                bos_id=BOS,
                eos_id=EOS,
                max_len=steps,
                stop_every=steps,
            )
        return decoding.beam_search(
            model,
            batch.src,
            batch.src_len,
            bos_id=BOS,
            eos_id=EOS,
            max_len=steps,
            beam_size=3,
            stop_every=steps,
        )

    reads = []
    for steps in (3, 9):
        with host_reads() as counts:
            decode(steps)
        reads.append(dict(counts))
    assert reads[0] == reads[1]
