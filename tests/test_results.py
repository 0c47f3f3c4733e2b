"""Each chapter's recorded results."""

from __future__ import annotations

import json

import pytest
import torch

from attnlab.measure import results


def test_results_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNLAB_PROFILE", "smoke")
    path = results.record_results(
        "01_test", {"bleu": torch.tensor(12.5), "sizes": [1, 2]}
    )
    assert path.parent == tmp_path / "build" / "results"
    record = results.load_results("01_test")
    assert record["results"] == {"bleu": 12.5, "sizes": [1, 2]}
    assert record["profile"] == "smoke" and record["torch"] == torch.__version__
    assert json.loads(path.read_text())["chapter"] == "01_test"
    assert results.available_results() == ["01_test"]
    with pytest.raises(FileNotFoundError, match="run that chapter first"):
        results.load_results("99_missing")
    with pytest.raises(ValueError):
        results.record_results("../escape", {})
    with pytest.raises(TypeError, match="cannot record"):
        results.record_results("01_test", {"bad": object()})
    assert results.load_results("01_test")["results"]["bleu"] == 12.5  # left intact
