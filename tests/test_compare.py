"""The measurements every model goes through in chapters 5 and 6."""

from __future__ import annotations

import pytest
import torch

from attnlab.core import runtime
from attnlab.course import compare
from attnlab.data import synthetic
from attnlab.data.batching import random_batch
from attnlab.data.vocab import Vocab
from attnlab.measure import evaluation, results
from attnlab.models import rnn
from attnlab.models.bahdanau import AttentionEncoderDecoder
from attnlab.models.contract import Seq2SeqOutput
from attnlab.models.transformer import Transformer


@pytest.fixture(scope="module")
def data():
    return synthetic.reversal_task(
        n_train=100, n_val=10, n_test=30, min_len=3, max_len=8, seed=0
    )


def _models(data):
    runtime.seed_everything(0)
    src, tgt = len(data.src_vocab), len(data.tgt_vocab)
    return {
        "gru": rnn.EncoderDecoder(src, tgt, embed_size=8, hidden_size=16, proj_size=8),
        "bahdanau": AttentionEncoderDecoder(
            src, tgt, embed_size=8, hidden_size=16, attention_size=8, proj_size=8
        ),
        "transformer": Transformer(
            src, tgt, d_model=16, num_heads=2, num_layers=1, d_ff=32
        ),
    }


def test_compare_translation_measures_every_model_alike(data):
    models = {
        name: (m, {"parameters": 123, "seconds": 4.5})
        for name, m in _models(data).items()
    }
    table = compare.compare_translation(models, data, beam_size=3)
    assert list(table) == ["gru", "bahdanau", "transformer"]
    for name, row in table.items():
        assert (
            row["parameters"] == 123
            and row["train_seconds"] == 4.5
            and row["device"] == "cpu"
        )
        assert (
            row["test_bleu"]
            == evaluation.evaluate_translation(models[name][0], data)["bleu"]
        )
        beam3 = evaluation.evaluate_translation(models[name][0], data, beam_size=3)
        assert (row["test_bleu_beam3"], row["test_chrf_beam3"]) == (
            beam3["bleu"],
            beam3["chrf"],
        )
        assert (
            row["test_chrf"]
            == evaluation.evaluate_translation(models[name][0], data)["chrf"]
        )
        assert row["sentences_per_second"] > 0 and row["sentences_per_second_beam3"] > 0
        assert (
            len(row["hypotheses"])
            == len(row["hypotheses_beam3"])
            == len(data.references("test")[0])
        )
        assert [r["bucket"] for r in row["bleu_by_length"]]


def _batch(length: int):
    return random_batch(12, 12, length, 4, generator=torch.Generator().manual_seed(0))


def test_training_memory_counts_what_backward_keeps(data):
    for name, model in _models(data).items():
        short, long = (compare.training_memory(model, _batch(n)) for n in (8, 32))
        params = sum(p.numel() for p in model.parameters())
        assert short["state"] == long["state"] == 4 * 4 * params, name
        # Activations grow with the sequence: at least 3x for 4x the length, at most 16x
        # (self-attention's maps are quadratic in the length).
        assert (
            3 * short["activations"] < long["activations"] < 16 * short["activations"]
        ), name
        assert all(p.grad is None for p in model.parameters())  # nothing left behind


def test_recorded_reads_only_this_profile(monkeypatch):
    smoke, full = runtime.Profile("smoke"), runtime.Profile("full")
    assert compare.recorded("05_transformer", "test_bleu", profile=smoke) == (
        None,
        None,
    )
    monkeypatch.setenv("ATTNLAB_PROFILE", "smoke")
    results.record_results("05_transformer", {"test_bleu": 12.5})
    value, provenance = compare.recorded("05_transformer", "test_bleu", profile=smoke)
    assert value == 12.5 and provenance.startswith("recorded by 05_transformer on 20")
    assert compare.recorded("05_transformer", "test_bleu", profile=full) == (None, None)
    assert compare.recorded("05_transformer", "missing", profile=smoke) == (None, None)


def test_loglog_slope():
    assert compare.loglog_slope([8, 16, 32], [3.0, 6.0, 12.0]) == pytest.approx(1.0)
    assert compare.loglog_slope([8, 16, 32], [1.0, 4.0, 16.0]) == pytest.approx(2.0)
    assert compare.loglog_slope([8, 16, 32], [5.0, 5.0, 5.0]) == pytest.approx(0.0)


def test_timing_models_share_width_and_vocabulary():
    models = compare.timing_models(vocab=50, width=32)
    assert list(models) == ["GRU encoder-decoder", "Bahdanau attention", "Transformer"]
    assert models["GRU encoder-decoder"].config["hidden_size"] == 32
    assert models["Transformer"].config["d_model"] == 32
    for model in models.values():
        out = model(
            src=torch.randint(4, 50, (2, 7)),
            src_len=torch.tensor([7, 5]),
            tgt_in=torch.randint(4, 50, (2, 6)),
        )
        assert out.logits.shape == (2, 6, 50)


def test_shared_alignment_and_agreement():
    src_vocab = Vocab([["the", "cat", "sat", "dog", "ran", "."]])
    tgt_vocab = Vocab([["le", "chat", "chien", "a", "couru", "."]])
    runtime.seed_everything(0)
    bahdanau = AttentionEncoderDecoder(
        len(src_vocab),
        len(tgt_vocab),
        embed_size=8,
        hidden_size=16,
        attention_size=8,
        proj_size=8,
    ).eval()
    transformer = Transformer(
        len(src_vocab),
        len(tgt_vocab),
        d_model=16,
        num_heads=2,
        num_layers=2,
        d_ff=32,
        dropout=0.0,
        max_len=40,
    ).eval()
    with torch.no_grad():
        transformer.out.bias[: tgt_vocab.eos_id] = -1e4  # never write <pad> or <bos>
    shared = compare.shared_alignment(
        bahdanau, transformer, "the cat sat .", src_vocab, tgt_vocab
    )
    T, S = len(shared["target"]), len(shared["source"])
    assert shared["source"] == ["the", "cat", "sat", ".", "<eos>"]
    assert shared["bahdanau"].shape == (T, S) and len(shared["transformer"]) == 2
    assert shared["transformer"][0].shape == (2, T, S)
    assert torch.allclose(shared["bahdanau"].sum(-1), torch.ones(T), atol=1e-5)
    # A model agrees with itself everywhere: a stand-in for Bahdanau's model whose weights are
    # the Transformer's own last-layer mean agrees with that layer on every word.
    agreement = compare.alignment_agreement(
        bahdanau, transformer, ["the cat sat .", "the dog ran ."], src_vocab, tgt_vocab
    )
    assert agreement["words"] > 0 and len(agreement["layer_mean"]) == 2
    # Counted by hand from the two sentences' maps: the share of output words whose
    # most-attended source word is Bahdanau's, per layer (mean of heads) and per head.
    maps = [
        compare.shared_alignment(bahdanau, transformer, s, src_vocab, tgt_vocab)
        for s in ["the cat sat .", "the dog ran ."]
    ]
    words = [len(m["target"]) - (m["target"][-1] == "<eos>") for m in maps]
    peaks = [m["bahdanau"][:w].argmax(-1) for m, w in zip(maps, words)]

    def share(attends):  # attends(map, words) -> (words,) source positions
        hits = sum(
            int((attends(m, w) == peak).sum()) for m, w, peak in zip(maps, words, peaks)
        )
        return hits / sum(words)

    assert agreement["words"] == sum(words)
    assert agreement["layer_mean"] == [
        share(lambda m, w, i=i: m["transformer"][i][:, :w].mean(0).argmax(-1))
        for i in range(2)
    ]
    assert agreement["heads"] == [
        [
            share(lambda m, w, i=i, h=h: m["transformer"][i][h, :w].argmax(-1))
            for h in range(2)
        ]
        for i in range(2)
    ]
    assert [max(heads) for heads in agreement["heads"]] == agreement["best_head"]
    assert [len(heads) for heads in agreement["heads"]] == [2, 2], (
        "every head of every layer"
    )

    class Echo(torch.nn.Module):  # "attends" exactly like the Transformer's last layer
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, *, src, src_len, tgt_in):
            out = transformer(
                src=src, src_len=src_len, tgt_in=tgt_in, need_weights=True
            )
            return Seq2SeqOutput(out.logits, attention=out.layers.cross[-1].mean(1))

    echo = compare.alignment_agreement(
        Echo(), transformer, ["the cat sat .", "the dog ran ."], src_vocab, tgt_vocab
    )
    assert echo["layer_mean"][-1] == 1.0
    assert agreement["diagonal"] == share(
        lambda m, w: compare.diagonal(w, len(m["source"]) - 1)
    )
    assert agreement["chance"] == sum(
        w / len(m["source"]) for m, w in zip(maps, words)
    ) / sum(words)

    class Diagonal(
        torch.nn.Module
    ):  # attends along the diagonal: the baseline, exactly
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def forward(self, *, src, src_len, tgt_in):
            T, S = tgt_in.shape[1], src.shape[1]
            alpha = torch.zeros(1, T, S)
            alpha[0, torch.arange(T), compare.diagonal(T, S - 1)] = 1.0
            return Seq2SeqOutput(torch.zeros(1, T, 3), attention=alpha)

    # Every output word but <eos> is scored: the diagonal of T words over S - 1 source words.
    straight = compare.alignment_agreement(
        Diagonal(), transformer, ["the cat sat ."], src_vocab, tgt_vocab
    )
    assert straight["diagonal"] == 1.0
    assert compare.diagonal(3, 5).tolist() == [0, 2, 4] and compare.diagonal(
        1, 4
    ).tolist() == [0]


def test_graph_depth_counts_the_longest_chain():
    x = torch.ones(3, requires_grad=True)
    y = x
    for _ in range(5):
        y = y * 2
    assert compare.graph_depth(y.sum()) == 5 + 1 + 1  # 5 products, the sum, the leaf
    wide = sum(x * k for k in range(10))  # many operations, side by side
    assert compare.graph_depth(wide) <= 12
    with pytest.raises(ValueError, match="no autograd history"):
        compare.graph_depth(torch.ones(2))


def test_recurrence_is_a_chain_and_self_attention_is_not():
    models = compare.timing_models(vocab=30, width=8)
    depth = {
        name: [compare.sequential_depth(m, n, vocab=30) for n in (4, 8, 16)]
        for name, m in models.items()
    }
    for name in ("GRU encoder-decoder", "Bahdanau attention"):
        a, b, c = depth[name]
        assert c - b == 2 * (b - a) > 0, name  # grows linearly with length
    assert len(set(depth["Transformer"])) == 1  # does not grow


def test_sequential_depth_leaves_the_model_as_it_was():
    """It measures on the CPU without moving the caller's model there (a model on a GPU
    stays on it) or changing its mode."""
    model = compare.timing_models(vocab=30, width=8)["Transformer"].eval()
    before = {name: p for name, p in model.named_parameters()}
    compare.sequential_depth(model, 8, vocab=30)
    assert not model.training
    assert all(p is before[name] for name, p in model.named_parameters())
    assert all(p.grad is None for p in model.parameters())


def test_across_seeds_trains_and_scores_each_model_once_per_seed(data):
    from attnlab.recipes import experiments

    profile = runtime.Profile("smoke")
    plan = experiments.Budget(
        steps=6, batch_size=16, lr=3e-3, log_every=3, eval_every=6
    )
    src, tgt = len(data.src_vocab), len(data.tgt_vocab)
    builders = {
        "gru": (
            "tiny-gru-seeds",
            lambda: rnn.EncoderDecoder(
                src, tgt, embed_size=8, hidden_size=16, proj_size=8
            ),
        )
    }
    found = compare.across_seeds(
        builders, data, plan, seeds=[0, 1, 2], profile=profile, device="cpu"
    )
    rows = found["gru"]
    assert [row["seed"] for row in rows] == [0, 1, 2]
    assert (
        len({row["test_bleu"] for row in rows} | {row["test_chrf"] for row in rows}) > 1
    ), "different seeds, different models"
    seed1, meta = experiments.train_model(
        "tiny-gru-seeds",
        builders["gru"][1],
        data,
        plan,
        profile=profile,
        seed=1,
        device="cpu",
    )
    assert meta["from_cache"], "each seed's model is cached under its own key"
    assert rows[1]["test_chrf"] == evaluation.evaluate_translation(seed1, data)["chrf"]
    spread = compare.seed_spread(rows, "test_chrf")
    values = [row["test_chrf"] for row in rows]
    assert spread["low"] == min(values) and spread["high"] == max(values)
    assert spread["mean"] == pytest.approx(sum(values) / 3)
    assert spread["std"] == pytest.approx(
        torch.tensor(values, dtype=torch.float64).std().item()
    )
    with pytest.raises(ValueError, match="two different seeds"):
        compare.across_seeds(
            builders, data, plan, seeds=[4, 4], profile=profile, device="cpu"
        )
    with pytest.raises(ValueError, match="two runs"):
        compare.seed_spread(rows[:1])
