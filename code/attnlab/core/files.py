"""Writing files so that nothing is lost: a reader never sees half a file, and two
processes sharing a folder take turns."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import filelock
from tqdm.auto import tqdm

from attnlab.core.runtime import SettingError


def _writable(folder: Path) -> None:
    """Make ``folder`` if needed; say what to do if it cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(f"no permission to write in {folder}")
    except OSError as exc:
        raise SettingError(
            f"cannot write in {folder} ({exc}): give ATTNLAB_BUILD_DIR "
            "(trained models, results) or ATTNLAB_CACHE_DIR (downloads) "
            "a folder you can write, or fix its permissions"
        ) from None


def _fsync_folder(folder: Path) -> None:
    # A rename is durable only once the folder that holds it is written out. Some
    # systems (Windows) cannot open a folder for this; there the rename is all there is.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only on success.

    If the body raises (or is interrupted), the temporary file is removed and
    any earlier file at ``path`` is left untouched. The file is flushed to disk before
    the rename and the folder after it, so a crash just after leaves the old file or the
    whole new one.
    """
    path = Path(path)
    _writable(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(tmp_path, path)
        _fsync_folder(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, *, waiting: str | None = None) -> Iterator[bool]:
    """Hold the lock of ``path`` (the file ``<path>.lock`` beside it) for the body.

    A second process asking for the same lock waits until the first is done, saying
    ``waiting`` once if given; the lock is the operating system's, so a process that
    dies releases it. Yields whether it had to wait. The lock works between processes
    on one machine, not between machines sharing a network folder: two Colab sessions
    on one Google Drive folder are two machines, and should each train into a cache
    folder of their own (``ATTNLAB_BUILD_DIR``).
    """
    path = Path(path)
    _writable(path.parent)
    lock = filelock.FileLock(f"{path}.lock")
    try:
        lock.acquire(timeout=0)
        waited = False
    except filelock.Timeout:
        if waiting:
            tqdm.write(waiting)
        lock.acquire()
        waited = True
    try:
        yield waited
    finally:
        lock.release()
