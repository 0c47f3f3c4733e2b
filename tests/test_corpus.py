"""Reading corpora: normalisation, the real fra-eng file, other corpora, and every bad input."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from attnlab.data import corpus
from attnlab.data.corpus import CorpusError

# --- normalisation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, tokens",
    [
        ("Go.", ["go", "."]),
        ("Run!", ["run", "!"]),
        ("Cours\u202f!", ["cours", "!"]),  # narrow no-break space (French typography)
        ("Qui\u00a0?", ["qui", "?"]),  # no-break space
        ("Recule\u2009!", ["recule", "!"]),  # thin space
        (
            "sur \u200b\u200bla musique.",
            ["sur", "la", "musique", "."],
        ),  # zero-width spaces
        ("in the sink\u00ad.", ["in", "the", "sink", "."]),  # soft hyphen
        ("Wait, what?!", ["wait", ",", "what", "?", "!"]),
        ("  Hello   world . ", ["hello", "world", "."]),
        ("I'm OK.", ["i'm", "ok", "."]),
    ],
)
def test_tokenize(raw, tokens):
    assert corpus.tokenize(raw) == tokens


def test_detokenize_inverts_the_space_before_punctuation():
    assert corpus.detokenize(["va", ",", "cours", "!"]) == "va, cours!"
    assert corpus.detokenize(corpus.tokenize("Where are you?")) == "where are you?"


def test_tokens_match_d2l_on_the_whole_corpus(fra_eng_dir, d2l):
    """Our tokens equal d2l's MTFraEng tokens on every line, except where our extra
    normalisation of U+2009, U+200B and U+00AD applies."""
    text = corpus.fra_eng_text(fra_eng_dir)
    reference = d2l.MTFraEng.__new__(d2l.MTFraEng)  # only its text methods are used
    d2l_src, d2l_tgt = reference._tokenize(reference._preprocess(text))
    pairs = corpus.parse_tsv(text)
    assert len(pairs) == len(d2l_src) == corpus.FRA_ENG_PAIRS
    differing = 0
    for (src, tgt), ref_src, ref_tgt in zip(pairs, d2l_src, d2l_tgt):
        ours = (corpus.tokenize(src) + ["<eos>"], corpus.tokenize(tgt) + ["<eos>"])
        if ours != (ref_src, ref_tgt):
            differing += 1
            assert any(c in src + tgt for c in "\u2009\u200b\u00ad"), (src, tgt)
    stray_lines = sum(any(c in s + t for c in "\u2009\u200b\u00ad") for s, t in pairs)
    assert 0 < differing <= stray_lines


# --- the real corpus ---------------------------------------------------------------


def test_fra_eng_from_folder_zip_and_env(fra_eng_dir, monkeypatch):
    from_folder = corpus.load_fra_eng(fra_eng_dir)
    assert len(from_folder) == corpus.FRA_ENG_PAIRS == 167_130
    assert from_folder[0] == ("Go.", "Va !")
    assert corpus.load_fra_eng(fra_eng_dir / "fra-eng.zip") == from_folder
    monkeypatch.setenv("ATTNLAB_DATA_DIR", str(fra_eng_dir))
    assert corpus.load_fra_eng() == from_folder


def test_fra_eng_from_extracted_text(fra_eng_dir, tmp_path):
    with zipfile.ZipFile(fra_eng_dir / "fra-eng.zip") as archive:
        archive.extract("fra-eng/fra.txt", tmp_path)
    assert len(corpus.load_fra_eng(tmp_path)) == corpus.FRA_ENG_PAIRS
    assert len(corpus.load_fra_eng(tmp_path / "fra-eng")) == corpus.FRA_ENG_PAIRS


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _real_fra(fra_eng_dir) -> bytes:
    with zipfile.ZipFile(fra_eng_dir / "fra-eng.zip") as archive:
        return archive.read("fra-eng/fra.txt")


def test_wrong_hash_is_refused(tmp_path):
    bad = _zip(tmp_path / "fra-eng.zip", {"fra-eng/fra.txt": b"Go.\tVa !\n"})
    with pytest.raises(CorpusError, match="SHA-1 .* expected c43f99"):
        corpus.load_fra_eng(bad)


def test_corrupt_zip_is_refused(tmp_path):
    bad = tmp_path / "fra-eng.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(CorpusError, match="not a valid zip"):
        corpus.load_fra_eng(bad)


def test_zip_without_the_file_is_refused(tmp_path):
    bad = _zip(tmp_path / "fra-eng.zip", {"fra-eng/_about.txt": b"about"})
    with pytest.raises(CorpusError, match="does not contain fra-eng/fra.txt"):
        corpus.load_fra_eng(bad)


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        corpus.load_fra_eng(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match="holds neither"):
        corpus.load_fra_eng(tmp_path)


# --- downloading into the cache ------------------------------------------------------


def _cache_files(tmp_path) -> list[str]:
    folder = tmp_path / "cache"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_and_caches(fra_eng_dir, tmp_path):
    url = (fra_eng_dir / "fra-eng.zip").resolve().as_uri()
    pairs = corpus.load_fra_eng(url=url)
    assert len(pairs) == corpus.FRA_ENG_PAIRS
    assert _cache_files(tmp_path) == ["fra-eng.zip"]
    # The second call reads the cache: an unreachable address is never contacted.
    assert corpus.load_fra_eng(url="http://127.0.0.1:9/unreachable.zip") == pairs


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"fra-eng/fra.txt": b"Go.\tVa !\n"}, "SHA-1"),
        (None, "not a valid zip"),
    ],
)
def test_bad_download_leaves_nothing_behind(tmp_path, payload, message):
    source = tmp_path / "served.zip"
    if payload is None:
        source.write_bytes(b"truncated download")
    else:
        _zip(source, payload)
    with pytest.raises(CorpusError, match=message):
        corpus.load_fra_eng(url=source.as_uri())
    assert _cache_files(tmp_path) == []


def test_unreachable_download_says_what_to_do(tmp_path):
    with pytest.raises(CorpusError, match="Offline.*ATTNLAB_DATA_DIR"):
        corpus.load_fra_eng(url="https://127.0.0.1:9/fra-eng.zip")
    assert _cache_files(tmp_path) == []


def test_the_corpus_comes_over_https_only(tmp_path):
    assert corpus.FRA_ENG_URL.startswith("https://")
    for url in (
        "http://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip",
        "ftp://x/y.zip",
    ):
        with pytest.raises(CorpusError, match="only https://"):
            corpus.load_fra_eng(url=url)
    assert _cache_files(tmp_path) == []


class _Response:
    """A stand-in for urlopen's answer: ``chunks`` then the end, or ``error`` instead of
    the end; ``length`` is the Content-Length it declares."""

    def __init__(self, chunks, *, length=None, error=None):
        self.chunks, self.error = list(chunks), error
        self.headers = {"Content-Length": str(length)} if length is not None else {}

    def read(self, size):
        if self.chunks:
            return self.chunks.pop(0)
        if self.error:
            raise self.error
        return b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _serve(monkeypatch, response):
    monkeypatch.setattr(corpus.urllib.request, "urlopen", lambda url, timeout: response)


def test_a_download_bigger_than_the_cap_is_refused(tmp_path, monkeypatch):
    _serve(monkeypatch, _Response([b"PK"], length=corpus.MAX_DOWNLOAD_BYTES + 1))
    with pytest.raises(CorpusError, match="offers .* more than"):
        corpus.load_fra_eng()
    monkeypatch.setattr(corpus, "MAX_DOWNLOAD_BYTES", 100)
    _serve(monkeypatch, _Response([b"x" * 64] * 3))  # no Content-Length: counted
    with pytest.raises(CorpusError, match="sent more than 100 bytes"):
        corpus.load_fra_eng()
    assert _cache_files(tmp_path) == []


def test_a_zip_member_too_big_is_not_inflated(tmp_path, monkeypatch):
    """The declared size is checked before inflating; a member that inflates past the
    cap anyway is cut off there."""
    _zip(tmp_path / "big.zip", {"fra-eng/fra.txt": b"Go.\tVa !\n" * 100})
    monkeypatch.setattr(corpus, "MAX_MEMBER_BYTES", 500)
    with pytest.raises(CorpusError, match="declares 900 bytes"):
        corpus.load_fra_eng(tmp_path / "big.zip")


def test_a_download_cut_short_says_so_not_offline(tmp_path, monkeypatch):
    _serve(monkeypatch, _Response([b"PK\x03\x04" + b"\0" * 60], length=1000))
    with pytest.raises(CorpusError, match="ended after 64 of 1,000 bytes") as error:
        corpus.load_fra_eng()
    assert "Offline" not in str(error.value) and _cache_files(tmp_path) == []


def test_a_full_disk_says_so_not_offline(tmp_path, monkeypatch):
    import errno

    class FullDisk:
        def __init__(self, *args, **kwargs):
            pass

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    _serve(monkeypatch, _Response([b"PK\x03\x04"], length=4))
    monkeypatch.setattr(corpus, "open", FullDisk, raising=False)
    with pytest.raises(
        CorpusError, match="No space left.*disk full.*ATTNLAB_CACHE_DIR"
    ) as error:
        corpus.load_fra_eng()
    assert "Offline" not in str(error.value) and _cache_files(tmp_path) == []


def test_an_unwritable_cache_folder_says_what_to_do(tmp_path, monkeypatch, fra_eng_dir):
    """Run as root, permissions stop nothing: a cache folder inside a file does."""
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("ATTNLAB_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    from attnlab.core.runtime import SettingError

    with pytest.raises(SettingError, match="cannot write in .*ATTNLAB_CACHE_DIR"):
        corpus.load_fra_eng(url=(fra_eng_dir / "fra-eng.zip").resolve().as_uri())


def test_no_download_when_forbidden(tmp_path):
    with pytest.raises(CorpusError, match="download=False"):
        corpus.load_fra_eng(download=False)


def test_corrupted_cache_is_reported(fra_eng_dir, tmp_path):
    (tmp_path / "cache").mkdir()
    _zip(
        tmp_path / "cache" / "fra-eng.zip",
        {"fra-eng/fra.txt": _real_fra(fra_eng_dir)[:-10]},
    )
    with pytest.raises(CorpusError, match="Delete it"):
        corpus.load_fra_eng()


# --- any parallel corpus ----------------------------------------------------------------


def test_tsv_with_extra_columns_and_blank_lines(tmp_path):
    path = tmp_path / "deu.txt"
    path.write_text(
        "Hi.\tHallo!\tCC-BY 2.0 (France) Attribution\n\nRun!\tLauf!\n", encoding="utf-8"
    )
    assert corpus.read_tsv(path) == [("Hi.", "Hallo!"), ("Run!", "Lauf!")]


@pytest.mark.parametrize(
    "text, message",
    [
        ("Hi.\tSalut.\nno tab here\n", "line 2"),
        ("Hi.\t\n", "line 1"),
        ("\n\n", "no sentence pairs"),
    ],
)
def test_malformed_tsv(tmp_path, text, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CorpusError, match=message):
        corpus.read_tsv(path)


def test_a_tsv_with_a_byte_order_mark_is_read_as_text(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes("\ufeffHi.\tSalut.\nRun!\tCours !\n".encode("utf-8"))
    assert corpus.read_tsv(path) == [("Hi.", "Salut."), ("Run!", "Cours !")]
    (tmp_path / "src.txt").write_bytes("\ufeffone\n".encode("utf-8"))
    (tmp_path / "tgt.txt").write_text("un\n", encoding="utf-8")
    assert corpus.read_parallel_files(tmp_path / "src.txt", tmp_path / "tgt.txt") == [
        ("one", "un")
    ]


def test_a_folder_passed_as_a_tsv_says_so(tmp_path):
    with pytest.raises(CorpusError, match="is a folder, not a corpus file"):
        corpus.read_tsv(tmp_path)


def test_non_utf8_tsv(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("Café.\tKaffee.\n".encode("latin-1"))
    with pytest.raises(CorpusError, match="not UTF-8"):
        corpus.read_tsv(path)


def test_line_aligned_files(tmp_path):
    (tmp_path / "src.txt").write_text("one\ntwo\n", encoding="utf-8")
    (tmp_path / "tgt.txt").write_text("un\ndeux\n", encoding="utf-8")
    assert corpus.read_parallel_files(tmp_path / "src.txt", tmp_path / "tgt.txt") == [
        ("one", "un"),
        ("two", "deux"),
    ]
    (tmp_path / "short.txt").write_text("un\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="2 lines but .* has 1"):
        corpus.read_parallel_files(tmp_path / "src.txt", tmp_path / "short.txt")
    (tmp_path / "hole.txt").write_text("un\n\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="line 2 .* one side is empty"):
        corpus.read_parallel_files(tmp_path / "src.txt", tmp_path / "hole.txt")


def test_readme_hash_is_the_one_checked(fra_eng_dir):
    assert hashlib.sha1(_real_fra(fra_eng_dir)).hexdigest() == corpus.FRA_ENG_SHA1


def test_interrupted_download_leaves_nothing_behind(tmp_path, monkeypatch):
    """A connection that breaks mid-transfer: a clear error, and no partial file in the cache."""

    class BrokenResponse:
        headers = {"Content-Length": "1000000"}
        sent = False

        def read(self, size):
            if self.sent:
                raise ConnectionResetError("connection reset by peer")
            self.sent = True
            return b"PK\x03\x04" + b"\0" * (size - 4)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(
        corpus.urllib.request, "urlopen", lambda url, timeout: BrokenResponse()
    )
    with pytest.raises(
        CorpusError,
        match="interrupted after 65,536 of 1,000,000 bytes "
        ".*connection reset.*run again",
    ) as error:
        corpus.load_fra_eng()
    assert "Offline" not in str(error.value) and _cache_files(tmp_path) == []
