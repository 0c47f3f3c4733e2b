"""Every registered model of the course, through the one contract the rest of the library uses."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
from helpers import decode_stepwise

from attnlab.core import runtime
from attnlab.data.batching import random_batch
from attnlab.infer import decoding
from attnlab.models import contract
from attnlab.models.contract import Generator, Seq2SeqModel, Seq2SeqOutput, Step
from attnlab.nn.batched import Batched
from attnlab.train import checkpoints
from attnlab.train.training import Trainer

V = 17  # both vocabularies
SMALL = {  # the smallest sensible size of each model the course registers
    "EncoderDecoder": dict(embed_size=8, hidden_size=16, num_layers=2, proj_size=8),
    "AttentionEncoderDecoder": dict(
        embed_size=8, hidden_size=16, attention_size=8, proj_size=8
    ),
    "Transformer": dict(d_model=16, num_heads=2, num_layers=2, d_ff=32, max_len=32),
    "SelfAttentionTagger": dict(
        d_model=16, num_heads=2, num_layers=1, d_ff=32, max_len=32
    ),
}
COURSE = sorted(
    name
    for name, cls in contract.MODELS.items()
    if cls.__module__.startswith("attnlab.")
)


def build(name):
    runtime.seed_everything(0)
    return contract.MODELS[name](V, V, dropout=0.0, **SMALL[name]).eval()


def test_every_model_of_the_course_is_covered():
    assert COURSE == sorted(SMALL)


@pytest.mark.parametrize("name", COURSE)
def test_registration_records_the_constructor_arguments(name, tmp_path):
    model = build(name)
    cls = type(model)
    expected = inspect.signature(cls).bind(V, V, dropout=0.0, **SMALL[name])
    expected.apply_defaults()
    assert model.config == dict(expected.arguments)  # every argument, defaults included
    checkpoints.save_checkpoint(tmp_path / "m.pt", model)
    again = checkpoints.load_checkpoint(
        tmp_path / "m.pt"
    ).model  # rebuilt by name + config
    assert type(again) is cls and again.config == model.config
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), again.state_dict().values())
    )


@pytest.mark.parametrize("name", COURSE)
def test_forward_returns_one_type(name):
    model = build(name)
    assert isinstance(model, Seq2SeqModel)
    batch = random_batch(V, V, 6, 3, generator=torch.Generator().manual_seed(0))
    out = model(src=batch.src, src_len=batch.src_len, tgt_in=batch.tgt_in)
    assert isinstance(out, Seq2SeqOutput) and out.logits.shape == (3, 6, V)
    if out.attention is not None:
        assert out.attention.shape == (3, 6, 6)
        assert torch.allclose(out.attention.sum(-1), torch.ones(3, 6), atol=1e-5)
    loss = Trainer(model, device="cpu").train_step(
        batch
    )  # the trainer needs nothing else
    assert loss > 0


@pytest.mark.parametrize("name", COURSE)
def test_source_padding_changes_nothing(name):
    """A sentence's outputs are the same alone and padded beside a longer one, whatever
    the padded positions hold: every model reads ``src_len``."""
    model = build(name)
    src, src_len = torch.randint(4, V, (2, 7)), torch.tensor([7, 4])
    tgt_in = torch.randint(4, V, (2, 7))
    padded = src.clone()
    padded[1, 4:] = 0  # <pad>
    noisy = src.clone()  # other tokens where the padding is
    with torch.no_grad():
        outputs = [
            model(src=x, src_len=src_len, tgt_in=tgt_in).logits[1, :4]
            for x in (padded, noisy)
        ]
        alone = model(src=src[1:, :4], src_len=src_len[1:], tgt_in=tgt_in[1:, :4])
    assert torch.allclose(outputs[0], alone.logits[0], atol=1e-5)
    assert torch.allclose(outputs[1], alone.logits[0], atol=1e-5)


GENERATORS = [name for name in COURSE if isinstance(build(name), Generator)]


@pytest.mark.parametrize("name", GENERATORS)
def test_the_decoder_is_causal(name):
    """What a model predicts at step t depends on the target tokens up to t only."""
    model = build(name)
    src, src_len = torch.randint(4, V, (2, 6)), torch.tensor([6, 3])
    tgt_in = torch.randint(4, V, (2, 6))
    changed = tgt_in.clone()
    changed[:, 4:] = torch.randint(4, V, (2, 2))
    with torch.no_grad():
        before = model(src=src, src_len=src_len, tgt_in=tgt_in).logits
        after = model(src=src, src_len=src_len, tgt_in=changed).logits
    assert torch.allclose(before[:, :4], after[:, :4], atol=1e-6)
    assert not torch.allclose(before[:, 4:], after[:, 4:], atol=1e-3)


def test_the_translation_models_generate():
    assert GENERATORS == ["AttentionEncoderDecoder", "EncoderDecoder", "Transformer"]


@pytest.mark.parametrize("name", GENERATORS)
def test_generation_follows_the_contract(name):
    model = build(name)
    src, src_len = torch.randint(4, V, (3, 7)), torch.tensor([7, 5, 2])
    tgt_in = torch.randint(4, V, (3, 5))
    memory = model.encode(src, src_len)
    assert dataclasses.is_dataclass(memory) and isinstance(memory, Batched)
    step = model.decode_step(tgt_in[:, 0], memory, None)
    assert isinstance(step, Step) and step.logits.shape == (3, V)
    assert isinstance(step.state, Batched)
    # Step by step equals teacher forcing, attention included where the model has it.
    full = model(
        src=src,
        src_len=src_len,
        tgt_in=tgt_in,
        **({"need_weights": True} if name == "Transformer" else {}),
    )
    logits, attention, _ = decode_stepwise(model, src, src_len, tgt_in)
    assert torch.allclose(logits, full.logits, atol=1e-5)
    assert (attention is None) == (full.attention is None)
    if attention is not None:
        assert torch.allclose(attention, full.attention, atol=1e-5)
        assert attention[2, :, 2:].eq(0).all()  # padding gets no weight
    # Selecting rows of the memory and state is the same as encoding those sentences.
    rows = torch.tensor([2, 0, 0])
    picked = model.decode_step(tgt_in[rows, 0], memory.select(rows), None)
    direct = model.decode_step(
        tgt_in[rows, 0], model.encode(src[rows], src_len[rows]), None
    )
    assert torch.allclose(picked.logits, direct.logits, atol=1e-5)
    # Greedy decoding and beam search work from the contract alone; a beam of one is greedy.
    greedy = decoding.greedy_decode(model, src, src_len, bos_id=1, eos_id=2, max_len=6)
    beam = decoding.beam_search(
        model, src, src_len, bos_id=1, eos_id=2, max_len=6, beam_size=1
    )
    assert beam == [
        row[:n] for row, n in zip(greedy.tokens.tolist(), greedy.lengths.tolist())
    ]
