"""Each benchmark runs in --quick mode: what it times is checked (the implementations it races
agree), and it writes the results file it promises. No time is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT

SCRIPTS = ["d2l", "torch", "decoding", "peak", "steps", "distributed", "chapters"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_runs_quick(name, tmp_path, fra_eng_dir):
    output = tmp_path / f"{name}.json"
    env = {**os.environ, "ATTNLAB_DATA_DIR": str(fra_eng_dir)}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / f"bench_{name}.py"),
            "--quick",
            "--output",
            str(output),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads(output.read_text(encoding="utf-8"))
    assert record["benchmark"] == name and record["quick"] is True
    assert {"torch", "device", "threads", "cpu_count", "cores_allowed"} <= set(
        record["machine"]
    )
    assert 1 <= record["machine"]["cores_allowed"] <= record["machine"]["cpu_count"]
    assert record["measurements"]
    for m in record["measurements"]:
        timing = m.get("ours") or m.get("step")
        if timing is not None:
            assert (
                timing["median"] > 0 and timing["spread"] >= 0 and timing["runs"] >= 1
            )
        if "speedup" in m:
            assert m["speedup"] == pytest.approx(
                m["theirs"]["median"] / m["ours"]["median"]
            )
    if name == "chapters":
        assert [m["chapter"] for m in record["measurements"]] == [
            "01_sentences_to_tensors"
        ]
        assert record["measurements"][0]["results"]["src_vocab"] > 0  # what it recorded
        assert "error" not in record["measurements"][0]
    if name == "steps":
        assert [m["name"] for m in record["measurements"]] == [
            "gru",
            "bahdanau",
            "transformer",
        ]
        assert all(
            m["profile"]["wall_ms_per_step"] > 0 and m["steps_per_second_queued"] > 0
            for m in record["measurements"]
        )
        # the course's steps read nothing back on the host (tests/test_host_waits.py)
        assert all(
            m["profile"]["host_reads_per_step"] == {} for m in record["measurements"]
        )
    if name == "distributed":
        # one process, then two under torchrun (gloo) sharing the same batches
        one, two = record["measurements"]
        assert (one["processes"], two["processes"]) == (1, 2)
        assert "speedup" not in one and two["peer"] == one["name"]
        assert two["speedup"] == pytest.approx(
            one["step"]["median"] / two["step"]["median"]
        )
        for m in (one, two):
            assert m["target_tokens_per_second"] > 0 and m["flop_per_step"] > 0
            assert m["fraction_of_peak"] == pytest.approx(
                m["gflops"] / record["peak_gflops"]
            )
        # the same batches, so the same tokens and nearly the same arithmetic (each
        # process pads its share of a batch to that share's longest sentence)
        assert one["target_tokens"] == two["target_tokens"]
        assert two["flop_per_step"] == pytest.approx(one["flop_per_step"], rel=0.1)


def test_all_pages_are_every_notebook_of_the_book_in_its_order():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_chapters
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    pages = bench_chapters.book_pages()
    assert sorted(pages) == sorted((ROOT / "chapters").rglob("*.ipynb"))
    names = [bench_chapters.page_name(p) for p in pages]
    assert len(set(names)) == len(names)  # each page recorded apart
    assert (
        names.index("02_encoder_decoder")
        < names.index("02_gradients_through_time")
        < names.index("solutions/02_encoder_decoder")
        < names.index("03_bahdanau_attention")
    )
    assert names.index("solutions/05_transformer") < names.index("lab/debugging")
    chapters_only = [bench_chapters.page_name(p) for p in bench_chapters.CHAPTERS]
    assert [n for n in names if "/" not in n] == chapters_only


def test_benchmarks_refuse_to_time_different_computations():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import common
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    import torch

    common.close(torch.ones(3), torch.ones(3), "same")
    with pytest.raises(AssertionError, match="disagree"):
        common.close(torch.ones(3), torch.zeros(3), "different")
