"""The course's shared settings: budgets, their cache keys, schedules, and train_model."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from attnlab.core import runtime
from attnlab.data import corpus, synthetic
from attnlab.measure import evaluation
from attnlab.models import rnn
from attnlab.recipes import experiments


def test_budgets_and_settings():
    smoke, full = runtime.Profile("smoke"), runtime.Profile("full")
    assert (
        experiments.budget("fra-eng", smoke).steps
        < experiments.budget("fra-eng", full).steps
    )
    assert experiments.fra_eng_settings(full)["n_train"] == 20_000
    with pytest.raises(ValueError, match="unknown task"):
        experiments.budget("chess", full)
    # One recipe for the three fra-eng models (Vaswani et al.'s): no model has its own.
    for profile in (smoke, full):
        shared = experiments.budget("fra-eng", profile)
        assert shared.label_smoothing == 0.1 and shared.betas == (0.9, 0.98)
        assert 0 < shared.warmup < shared.steps
        with pytest.raises(ValueError, match="unknown task"):
            experiments.budget("fra-eng-transformer", profile)
        ablation = experiments.budget("transformer-ablation", profile)
        assert (ablation.label_smoothing, ablation.betas) == (
            shared.label_smoothing,
            shared.betas,
        )
        seeds = experiments.budget("fra-eng-seeds", profile)
        assert (seeds.label_smoothing, seeds.betas, seeds.lr) == (
            shared.label_smoothing,
            shared.betas,
            shared.lr,
        )
        assert seeds.steps * seeds.batch_size < shared.steps * shared.batch_size
    # Every budget gives a schedule (none asks for two decays at once).
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    for profile in (smoke, full):
        for task in (
            "fra-eng",
            "reversal",
            "positions",
            "language-model",
            "transformer-ablation",
            "reversal-transformer",
            "fra-eng-seeds",
        ):
            experiments.make_schedule(optimizer, experiments.budget(task, profile))


def test_every_budget_setting_enters_the_cache_key():
    plain = experiments.Budget(
        steps=10, batch_size=8, lr=1e-3, log_every=5, eval_every=10
    )
    changed = dict(
        steps=11,
        batch_size=9,
        lr=2e-3,
        log_every=2,
        eval_every=5,
        warmup=3,
        label_smoothing=0.1,
        betas=(0.9, 0.98),
        decay=True,
        cooldown=2,
        max_tokens=64,
    )
    assert set(changed) == {f.name for f in dataclasses.fields(plain)}
    for name, value in changed.items():
        assert dataclasses.replace(plain, **{name: value}).spec() != plain.spec(), name


@pytest.mark.parametrize(
    "settings, expected",
    [
        (dict(), [1.0, 1.0, 1.0, 1.0]),
        (dict(decay=True), [1.0, 0.75, 0.5, 0.25]),
        (dict(warmup=2), [0.5, 1.0, 1.0, 1.0]),
        (dict(warmup=2, decay=True), [0.5, 1.0, 1.0, 0.5]),
        (dict(warmup=1, cooldown=2), [1.0, 1.0, 1.0, 0.5]),
    ],
)
def test_make_schedule(settings, expected):
    plan = experiments.Budget(
        steps=4, batch_size=8, lr=1.0, log_every=1, eval_every=4, **settings
    )
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = experiments.make_schedule(optimizer, plan)
    rates = []
    for _ in range(4):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if schedule is not None:
            schedule.step()
    assert rates == pytest.approx(expected)


def test_make_schedule_refuses_two_decays():
    plan = experiments.Budget(
        steps=4, batch_size=8, lr=1.0, log_every=1, eval_every=4, decay=True, cooldown=2
    )
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match="not both"):
        experiments.make_schedule(optimizer, plan)


def test_train_model_caches_the_experiment():
    profile = runtime.Profile("smoke")
    data = synthetic.reversal_task(
        n_train=200, n_val=20, n_test=40, min_len=3, max_len=8, seed=0
    )
    plan = experiments.Budget(
        steps=12, batch_size=32, lr=3e-3, log_every=4, eval_every=12
    )

    def build():
        return rnn.EncoderDecoder(
            len(data.src_vocab),
            len(data.tgt_vocab),
            embed_size=8,
            hidden_size=16,
            proj_size=8,
            dropout=0.0,
        )

    model, meta = experiments.train_model(
        "tiny-rev", build, data, plan, profile=profile, device="cpu"
    )
    again, meta2 = experiments.train_model(
        "tiny-rev", build, data, plan, profile=profile, device="cpu"
    )
    assert not meta["from_cache"] and meta2["from_cache"]
    assert meta2["history"]["train_loss"] == meta["history"]["train_loss"]
    assert meta["history"]["val_steps"] == [12]
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    scores = evaluation.evaluate_exact_match(model, data)
    # the share of test sources the cached model translates exactly, counted here
    sources, targets = zip(*data.split("test"))
    translated = evaluation.translate_tokens(
        again, list(sources), data.src_vocab, data.tgt_vocab, max_len=20
    )
    right = sum(list(t) == list(y) for t, y in zip(translated, targets))
    assert scores["exact_match"] == right / len(targets)
    assert scores["by_length"][0]["bucket"] == "3-5"
    # A token budget: each step of at most 40 positions padded (strings of 3-8
    # letters and <eos>: 4 to 13 sentences), so fewer target tokens than batches of 32.
    budgeted, meta3 = experiments.train_model(
        "tiny-rev",
        build,
        data,
        dataclasses.replace(plan, max_tokens=40),
        profile=profile,
        device="cpu",
    )
    assert not meta3["from_cache"]
    assert meta3["history"]["tokens"] <= 12 * 40 < meta["history"]["tokens"]


def test_translation_models_record_validation_bleu_at_every_evaluation():
    profile = runtime.Profile("smoke")
    # reversal, scored as a translation: a task in words gets the validation-BLEU callback
    data = dataclasses.replace(
        synthetic.reversal_task(
            n_train=200, n_val=20, n_test=40, min_len=3, max_len=8, seed=0
        ),
        units="words",
    )
    plan = experiments.Budget(
        steps=12, batch_size=32, lr=3e-3, log_every=3, eval_every=6
    )

    def build():
        return rnn.EncoderDecoder(
            len(data.src_vocab),
            len(data.tgt_vocab),
            embed_size=8,
            hidden_size=16,
            proj_size=8,
            dropout=0.0,
        )

    model, meta = experiments.train_model(
        "tiny-rev-words", build, data, plan, profile=profile, device="cpu"
    )
    history = meta["history"]
    assert history["val_steps"] == [6, 12]
    assert len(history["val_scores"]["bleu"]) == 2, "one score per evaluation, no more"
    assert history["val_scores"]["bleu"][-1] == pytest.approx(
        evaluation.evaluate_translation(model, data, "val")["bleu"]
    )
    assert (
        0 < history["val_seconds"][0] < history["val_seconds"][1] <= history["seconds"]
    )

    _, meta = experiments.train_model(
        "tiny-rev-symbols",
        build,
        dataclasses.replace(data, units="symbols"),
        plan,
        profile=profile,
        device="cpu",
    )
    assert meta["history"]["val_scores"] == {}, (
        "a synthetic task is scored by exact match instead"
    )

    from attnlab.models.selfattention import SelfAttentionTagger

    def tagger():  # labels every position: no translation to score
        return SelfAttentionTagger(
            len(data.src_vocab),
            len(data.tgt_vocab),
            d_model=16,
            num_heads=2,
            num_layers=1,
            d_ff=32,
            reads="tgt_in",
        )

    _, meta = experiments.train_model(
        "tiny-lm-words", tagger, data, plan, profile=profile, device="cpu"
    )
    assert meta["history"]["val_scores"] == {}, (
        "a model that does not generate is not scored"
    )


def test_fra_eng_data_is_prepared_once_then_read(fra_eng_dir, monkeypatch, tmp_path):
    """The first call prepares the data and writes it to the build folder; a new
    process (the in-memory cache cleared) reads it back without preparing anything."""
    monkeypatch.setenv("ATTNLAB_DATA_DIR", str(fra_eng_dir))
    smoke = runtime.get_profile("smoke")
    experiments._fra_eng.cache_clear()
    made = experiments.fra_eng_data(smoke)
    files = list(experiments.data_dir().glob("fra-eng-*.json.gz"))
    assert len(files) == 1
    experiments._fra_eng.cache_clear()

    def refuse(*args, **kwargs):
        raise AssertionError("prepared again instead of read")

    monkeypatch.setattr(experiments, "translation_data", refuse)
    read = experiments.fra_eng_data(smoke)
    assert read == made and read.summary() == made.summary()
    experiments._fra_eng.cache_clear()


def test_the_data_key_follows_the_corpus_the_settings_and_the_data_code(tmp_path):
    from helpers import edited_library_copy

    settings = experiments.fra_eng_settings(runtime.get_profile("smoke"))
    text = "Go.\tVa !\tCC-BY 2.0\n"
    key = experiments.fra_eng_key(text, settings)
    assert experiments.fra_eng_key(text, dict(settings)) == key  # stable
    assert experiments.fra_eng_key(text + "Hi.\tSalut.\tCC-BY\n", settings) != key
    assert experiments.fra_eng_key(text, {**settings, "min_freq": 1}) != key

    def edited(module, old, new):
        folder = edited_library_copy(
            tmp_path / f"{module}-{len(old)}", module, old, new
        )
        return experiments.fra_eng_key(text, settings, folder=folder)

    # the code that prepares the data changes the key ...
    assert edited("dataset", "0 < len(s) <= max_len", "0 < len(s) < max_len") != key
    assert (
        edited(
            "corpus", "def tokenize(", "def _unused():\n    return 1\n\n\ndef tokenize("
        )
        != key
    )
    # ... its documentation and the code that trains do not
    assert (
        edited("dataset", "Split pairs into train", "Split the pairs into train") == key
    )
    assert (
        edited("training", "clip: float | None = 1.0", "clip: float | None = 5.0")
        == key
    )


def test_the_real_lengths_data_keeps_every_length_and_tests_each(
    fra_eng_dir, monkeypatch
):
    """Chapter 7's data (smoke profile): the corpus unfiltered by length, in subwords
    learnt on the training split, its test split held out by source length (at most
    n_test sources a bucket, all buckets there), words again once detokenised."""
    monkeypatch.setenv("ATTNLAB_DATA_DIR", str(fra_eng_dir))
    profile = runtime.get_profile("smoke")
    settings = experiments.real_lengths_settings(profile)
    data = experiments.real_lengths_data(profile)
    assert (
        data.units == "subwords" and data.info["pairs_kept"] == data.info["pairs_read"]
    )
    words = [len(corpus.join_pieces(s)) for s, _ in data.test]
    edges, low = settings["length_edges"], 1
    for high in edges:
        count = len(
            {
                " ".join(s)
                for s, _ in data.test
                if low <= len(corpus.join_pieces(s)) <= high
            }
        )
        assert 0 < count <= settings["n_test"], (low, high)
        low = high + 1
    assert max(words) > 20  # long sentences are held out too
    train = {tuple(s) for s, _ in data.train}
    assert not train & {tuple(s) for s, _ in data.test}
    assert len(data.train) == settings["n_train"]
    sources, references = data.references("test")
    assert all("@@" not in r for refs in references for r in refs)
    assert experiments.real_lengths_data(profile) is data  # prepared once a session
