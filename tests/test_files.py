"""Atomic writes: a reader never sees half a file, and a failed write loses nothing."""

from __future__ import annotations

import pytest

from attnlab.files import atomic_path, atomic_write_text


def test_a_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "sub" / "notes.txt"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second" and [p.name for p in path.parent.iterdir()] == ["notes.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "notes.txt"
    atomic_write_text(path, "kept")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(path) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("disk on fire")
    assert path.read_text() == "kept" and [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
