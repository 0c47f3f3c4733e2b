"""Atomic writes: a reader never sees half a file, and a failed write loses nothing."""

from __future__ import annotations

import pytest

from attnlab.core.files import atomic_path, atomic_write_text


def test_a_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "sub" / "notes.txt"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second" and [p.name for p in path.parent.iterdir()] == [
        "notes.txt"
    ]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "notes.txt"
    atomic_write_text(path, "kept")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(path) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("disk on fire")
    assert path.read_text() == "kept" and [p.name for p in tmp_path.iterdir()] == [
        "notes.txt"
    ]


def test_the_file_is_flushed_before_the_rename_and_the_folder_after(
    tmp_path, monkeypatch
):
    import os

    from attnlab.core import files

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.isdir(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(a, b):
        events.append(("replace", None))
        real_replace(a, b)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    atomic_write_text(tmp_path / "notes.txt", "durable")
    assert events == [("fsync", False), ("replace", None), ("fsync", True)]


def test_a_folder_that_cannot_be_written_says_what_to_do(tmp_path):
    """As root, permissions stop nothing; a folder that would have to be inside a file
    cannot be made by anyone."""
    from attnlab.core.runtime import SettingError

    (tmp_path / "a-file").write_text("")
    with pytest.raises(
        SettingError, match="cannot write in .*a-file/models.*ATTNLAB_BUILD_DIR"
    ):
        atomic_write_text(tmp_path / "a-file" / "models" / "m.txt", "x")
