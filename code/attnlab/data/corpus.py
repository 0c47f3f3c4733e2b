"""Parallel corpora: reading sentence pairs, normalising and tokenising them.

The course's corpus is English–French from Tatoeba (www.manythings.org/anki
and tatoeba.org, CC-BY 2.0), the same file d2l downloads as ``fra-eng.zip``.
:func:`load_fra_eng` finds it in this order:

1. the ``path`` argument: ``fra-eng.zip``, a folder holding it, or a folder
   holding ``fra.txt`` (directly or in ``fra-eng/``);
2. the folder named by the environment variable ``ATTNLAB_DATA_DIR``;
3. the download cache (``ATTNLAB_CACHE_DIR``, default ``~/.cache/attnlab``);
4. a download from d2l's address (or from ``ATTNLAB_FRA_ENG_URL``: a mirror, or a
   ``file://`` copy) into that cache.

Whatever the source, the SHA-1 of ``fra.txt`` is checked, so the book's
numbers always come from the same text. Any other parallel corpus can be read
with :func:`read_tsv` or :func:`read_parallel_files`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from attnlab.core.files import atomic_path
from attnlab.core.runtime import cache_dir

FRA_ENG_URL = "https://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip"
FRA_ENG_MEMBER = "fra-eng/fra.txt"
FRA_ENG_SHA1 = "c43f99dce27311d3afd4d3e0716848194cfcc103"  # of fra.txt, not of the zip
FRA_ENG_PAIRS = 167_130
# Caps on what a download may bring: fra-eng.zip is 3.4 MB, fra.txt 11.7 MB inflated.
MAX_DOWNLOAD_BYTES = 64 << 20
MAX_MEMBER_BYTES = 128 << 20

Pair = tuple[str, str]


class CorpusError(RuntimeError):
    """The corpus could not be found, fetched or read; the message says what to do."""


# --- normalisation and tokens -------------------------------------------------

# Spaces that are not ASCII spaces become spaces; invisible characters vanish.
_SPACES = str.maketrans(
    {"\u202f": " ", "\u00a0": " ", "\u2009": " ", "\u200b": None, "\u00ad": None}
)
_PUNCT = ",.!?"


def normalize(text: str) -> str:
    """Lower-case ``text`` and put a space before punctuation, as d2l does.

    d2l maps U+202F (narrow no-break space) and U+00A0 (no-break space) to
    spaces; this also maps U+2009 (thin space) and drops U+200B (zero-width
    space) and U+00AD (soft hyphen), which occur a few times in the corpus.
    """
    text = text.translate(_SPACES).lower().strip()
    out = []
    for i, char in enumerate(text):
        if char in _PUNCT and i > 0 and text[i - 1] != " ":
            out.append(" ")
        out.append(char)
    return "".join(out)


def tokenize(text: str) -> list[str]:
    """Word tokens of a normalised sentence: split on spaces, drop empty tokens."""
    return [token for token in normalize(text).split(" ") if token]


# ends a subword piece that does not end its word (attnlab.data.subwords)
JOINER = "@@"


def join_pieces(tokens: list[str]) -> list[str]:
    """Subword pieces back into words: ``["tra@@", "vail@@", "lons"]`` ->
    ``["travaillons"]``. Words pass through unchanged (the corpus has no ``@``)."""
    words, pending = [], ""
    for token in tokens:
        if token.endswith(JOINER) and len(token) > len(JOINER):
            pending += token[: -len(JOINER)]
        else:
            words.append(pending + token)
            pending = ""
    return words + [pending] if pending else words


def detokenize(tokens: list[str]) -> str:
    """Join tokens (words, or subword pieces) into text, removing the space put before
    punctuation."""
    return re.sub(r" ([,.!?])", r"\1", " ".join(join_pieces(tokens)))


# --- reading any parallel corpus ---------------------------------------------


def parse_tsv(text: str, *, origin: str = "<text>") -> list[Pair]:
    """Pairs from ``source<TAB>target`` lines; further columns are ignored.

    Blank lines are skipped. A line without a tab or with an empty side is an
    error that names the line, as is a corpus with no pairs at all.
    """
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            raise CorpusError(
                f"{origin}, line {number}: expected "
                "'source<TAB>target' with both "
                f"sides non-empty, got {line[:80]!r}. "
                "Fix or remove this line."
            )
        pairs.append((fields[0].strip(), fields[1].strip()))
    if not pairs:
        raise CorpusError(f"{origin} holds no sentence pairs: is it the right file?")
    return pairs


def _read_text(path: Path) -> str:
    # utf-8-sig: a byte-order mark (some editors write one) is not part of a word
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CorpusError(f"corpus file {path} does not exist") from None
    except IsADirectoryError:
        raise CorpusError(
            f"{path} is a folder, not a corpus file: pass the "
            "path of the .tsv/.txt file inside it"
        ) from None
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path} is not UTF-8 text ({exc}); convert it to UTF-8 first"
        ) from None


def read_tsv(path: str | os.PathLike) -> list[Pair]:
    """Read a two-column tab-separated corpus: one ``source<TAB>target`` pair a line."""
    path = Path(path)
    return parse_tsv(_read_text(path), origin=str(path))


def read_parallel_files(
    source: str | os.PathLike, target: str | os.PathLike
) -> list[Pair]:
    """Read two line-aligned files: line *i* of ``target`` translates line *i* of
    ``source``."""
    source, target = Path(source), Path(target)
    src_lines = _read_text(source).splitlines()
    tgt_lines = _read_text(target).splitlines()
    if len(src_lines) != len(tgt_lines):
        raise CorpusError(
            f"{source} has {len(src_lines)} lines but {target} has {len(tgt_lines)}: "
            "line-aligned files must have one target line per source line"
        )
    pairs = []
    for number, (src, tgt) in enumerate(zip(src_lines, tgt_lines), start=1):
        if not src.strip() and not tgt.strip():
            continue
        if not src.strip() or not tgt.strip():
            raise CorpusError(
                f"line {number} of {source} / {target}: one side is empty"
            )
        pairs.append((src.strip(), tgt.strip()))
    if not pairs:
        raise CorpusError(f"{source} and {target} hold no sentence pairs")
    return pairs


# --- the English-French corpus -------------------------------------------------


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _fra_from_zip(zip_path: Path) -> bytes:
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
            member = FRA_ENG_MEMBER if FRA_ENG_MEMBER in names else "fra.txt"
            if member not in names:
                raise CorpusError(
                    f"{zip_path} does not contain "
                    f"{FRA_ENG_MEMBER}; it holds {names[:5]}"
                )
            declared = archive.getinfo(member).file_size
            if declared > MAX_MEMBER_BYTES:
                raise CorpusError(
                    f"{zip_path}: {member} declares {declared:,} "
                    f"bytes, more than the {MAX_MEMBER_BYTES:,} "
                    "a corpus may have; this is not fra-eng.zip"
                )
            with archive.open(member) as inflating:
                data = inflating.read(MAX_MEMBER_BYTES + 1)
            if len(data) > MAX_MEMBER_BYTES:
                raise CorpusError(
                    f"{zip_path}: {member} inflates past "
                    f"{MAX_MEMBER_BYTES:,} bytes: not fra-eng.zip"
                )
            return data
    except zipfile.BadZipFile:
        raise CorpusError(
            f"{zip_path} is not a valid zip file (corrupt or incomplete download?): "
            "delete it and download fra-eng.zip again"
        ) from None


def _fra_from_path(path: Path) -> bytes:
    """The bytes of fra.txt from a zip, a folder holding the zip, or a folder holding
    fra.txt."""
    if path.is_file():
        return path.read_bytes() if path.suffix == ".txt" else _fra_from_zip(path)
    if path.is_dir():
        for candidate in (
            path / "fra-eng.zip",
            path / "fra-eng" / "fra.txt",
            path / "fra.txt",
        ):
            if candidate.is_file():
                return _fra_from_path(candidate)
        raise CorpusError(
            f"{path} holds neither fra-eng.zip nor fra.txt (nor fra-eng/fra.txt)"
        )
    raise CorpusError(f"{path} does not exist")


def _check_fra(data: bytes, origin: str) -> bytes:
    digest = _sha1(data)
    if digest != FRA_ENG_SHA1:
        raise CorpusError(
            f"fra.txt from {origin} has SHA-1 {digest}, "
            f"expected {FRA_ENG_SHA1}: the file "
            "is corrupt or a different version. "
            "Delete it and fetch fra-eng.zip again; to "
            "use another corpus on purpose, read it "
            "with attnlab.data.corpus.read_tsv instead."
        )
    return data


_ELSEWHERE = (
    "Download fra-eng.zip elsewhere and pass its path to "
    "load_fra_eng(path=...) or set ATTNLAB_DATA_DIR to its folder."
)


def _download(url: str, destination: Path) -> None:
    """Download ``url`` to ``destination`` atomically, verifying the fra.txt inside.

    Only ``https://`` (or a local ``file://`` copy) is accepted, at most
    ``MAX_DOWNLOAD_BYTES``; a lost connection and a full disk each say so.
    """
    if urllib.parse.urlsplit(url).scheme not in ("https", "file"):
        raise CorpusError(
            f"refusing to download {url}: only https:// addresses (or "
            "a local file:// copy) are used, so that nothing can alter "
            "the corpus on its way"
        )
    try:
        response = urllib.request.urlopen(url, timeout=60)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CorpusError(
            f"could not download {url} ({exc}). Offline? " + _ELSEWHERE
        ) from None
    with response, atomic_path(destination) as tmp:
        total = int(response.headers.get("Content-Length") or 0) or None
        if total is not None and total > MAX_DOWNLOAD_BYTES:
            raise CorpusError(
                f"{url} offers {total:,} bytes, more than the "
                f"{MAX_DOWNLOAD_BYTES:,} fra-eng.zip can have: "
                "this is not the corpus"
            )
        received = 0
        with (
            open(tmp, "wb") as out,
            tqdm(total=total, unit="B", unit_scale=True, desc="fra-eng.zip") as bar,
        ):
            while True:
                try:
                    chunk = response.read(1 << 16)
                except (OSError, http.client.HTTPException) as exc:
                    raise CorpusError(
                        f"the download of {url} was interrupted after {received:,}"
                        f"{f' of {total:,}' if total else ''} bytes ({exc}): run "
                        "again to start over. " + _ELSEWHERE
                    ) from None
                if not chunk:
                    break
                received += len(chunk)
                if received > MAX_DOWNLOAD_BYTES:
                    raise CorpusError(
                        f"{url} sent more than {MAX_DOWNLOAD_BYTES:,} "
                        "bytes: this is not the corpus; stopped"
                    )
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise CorpusError(
                        f"could not write the download to {destination.parent} "
                        f"({exc}): is the disk full? Free some space there or set "
                        "ATTNLAB_CACHE_DIR to another folder."
                    ) from None
                bar.update(len(chunk))
        if total is not None and received != total:
            raise CorpusError(
                f"the download of {url} ended after {received:,} of "
                f"{total:,} bytes: run again to start over. " + _ELSEWHERE
            )
        _check_fra(_fra_from_zip(tmp), url)


def fra_eng_text(
    path: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    download: bool = True,
) -> str:
    """The verified text of ``fra.txt``, found as the module docstring describes;
    ``url``, else ``ATTNLAB_FRA_ENG_URL``, else :data:`FRA_ENG_URL` is where it is
    downloaded from."""
    url = url or os.environ.get("ATTNLAB_FRA_ENG_URL") or FRA_ENG_URL
    if path is None and os.environ.get("ATTNLAB_DATA_DIR"):
        path = os.environ["ATTNLAB_DATA_DIR"]
        origin = f"ATTNLAB_DATA_DIR={path}"
    else:
        origin = str(path)
    if path is not None:
        data = _check_fra(_fra_from_path(Path(path).expanduser()), origin)
        return data.decode("utf-8")
    cached = cache_dir() / "fra-eng.zip"
    if not cached.exists():
        if not download:
            raise CorpusError(
                f"fra-eng.zip is not in {cached.parent} and download=False"
            )
        _download(url, cached)
    return _check_fra(_fra_from_zip(cached), str(cached)).decode("utf-8")


def load_fra_eng(
    path: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    download: bool = True,
) -> list[Pair]:
    """All 167,130 English–French pairs of the Tatoeba corpus, as raw text."""
    return parse_tsv(fra_eng_text(path, url=url, download=download), origin="fra.txt")
