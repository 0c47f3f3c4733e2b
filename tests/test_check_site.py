"""The check the workflow runs before it publishes (book/check_site.py): it passes the
smoke build of the whole book and names each way a site can be broken, and the vendor
install and the book refuse, under CI, to fall back to CDNs."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from helpers import ROOT

SCRIPT = ROOT / "book" / "check_site.py"


def _module():
    spec = importlib.util.spec_from_file_location("check_site", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_site = _module()


def _run(site) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(site)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_smoke_build_passes_the_check(book_build, built_book):
    """The workflow's own check step passed on the smoke build (conftest.BookBuild ran
    it after the build)."""
    html, result = built_book
    assert result.returncode == 0, "the book did not build"
    checked = book_build.step("check_site.py")
    assert checked.returncode == 0, checked.stderr
    assert "three models verified" in checked.stdout


def test_the_check_names_every_way_a_site_is_broken(built_book, tmp_path):
    html, result = built_book
    assert result.returncode == 0, "the book did not build"
    site = tmp_path / "html"
    shutil.copytree(html, site)
    # A page that did not build, and one whose cell failed.
    (site / "chapters" / "04_self_attention.html").unlink()
    page = site / "chapters" / "03_bahdanau_attention.html"
    text = page.read_text(encoding="utf-8")
    page.write_text(
        text.replace(
            "</article>",
            '<div class="output traceback">ZeroDivisionError</div></article>',
            1,
        ),
        encoding="utf-8",
    )
    # A page without its Content-Security-Policy.
    bare = site / "chapters" / "02_encoder_decoder.html"
    bare.write_text(
        re.sub(
            r'\n<meta http-equiv="Content-Security-Policy"[^>]*>',
            "",
            bare.read_text(encoding="utf-8"),
            count=1,
        ),
        encoding="utf-8",
    )
    # A model file changed after its hashes were written; a stray file beside another.
    models = site / "_static" / "models"
    weights = models / "gru-fra-eng" / "model.onnx.gz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    (models / "transformer-fra-eng" / "notes.txt").write_text("x", encoding="utf-8")
    # A vendored file missing, another changed.
    vendor = site / "_static" / "vendor"
    shutil.rmtree(vendor / "onnxruntime-web")
    css = vendor / "katex" / "katex.min.css"
    css.write_bytes(css.read_bytes() + b"\n")
    # Loads from another host: a script, a style sheet's import, a module's import.
    intro = site / "book" / "intro.html"
    intro.write_text(
        intro.read_text(encoding="utf-8").replace(
            "</head>",
            '<script defer src="https://cdn.example.org/x.js"></script></head>',
            1,
        ),
        encoding="utf-8",
    )
    (site / "_static" / "extra.css").write_text(
        '@import "https://fonts.example.org/f.css";', encoding="utf-8"
    )
    (site / "_static" / "extra.mjs").write_text(
        'import x from "https://esm.example.org/x";', encoding="utf-8"
    )

    checked = _run(site)
    assert checked.returncode == 1
    problems = [
        line
        for line in checked.stderr.splitlines()
        if not line.endswith("the site is not published")
    ]
    expected = [
        "chapters/04_self_attention: not built",
        "chapters/03_bahdanau_attention: 1 cell(s) failed",
        "chapters/02_encoder_decoder: no Content-Security-Policy",
        "_static/models/gru-fra-eng: ",
        "_static/models/transformer-fra-eng: files no manifest names: ['notes.txt']",
        "_static/vendor/onnxruntime-web/",
        "_static/vendor/katex/katex.min.css: differs",
        "book/intro.html: loads https://cdn.example.org/x.js from another host",
        "_static/extra.css: loads https://fonts.example.org/f.css from another host",
        "_static/extra.mjs: loads https://esm.example.org/x from another host",
    ]
    for words in expected:
        assert any(words in line for line in problems), (words, problems)
    assert all(any(words in line for words in expected) for line in problems), problems


def test_a_missing_site_or_models_index_is_named(tmp_path):
    assert check_site.check(tmp_path) == [
        f"{tmp_path} is not a built site (no index.html)"
    ]
    (tmp_path / "_static" / "models").mkdir(parents=True)
    problems = check_site.check_models(tmp_path)
    assert len(problems) == 1 and "index.json: missing" in problems[0]
    (tmp_path / "_static" / "models" / "index.json").write_text(
        '{"models": [{"name": "gru-fra-eng"}]}', encoding="utf-8"
    )
    problems = check_site.check_models(tmp_path)
    assert "not the three models" in problems[0]
    assert "gru-fra-eng" in problems[1] and len(problems) == 2


def test_links_elsewhere_are_fine_but_loads_are_not(tmp_path):
    """A page may link to the repository or a paper (``<a href>``); it may not load a
    script, style sheet, image, font or frame from another host."""
    (tmp_path / "page.html").write_text(
        '<html><head><link rel="canonical" href="https://example.org/page.html">'
        '<link rel="stylesheet" href="_static/local.css">'
        '<link rel="preload" href="//fonts.example.org/a.woff2" as="font">'
        '<style>body { background: url("https://img.example.org/bg.png") }</style></head>'
        '<body><a href="https://arxiv.org/abs/1409.0473">paper</a>'
        '<img src="data:image/png;base64,AAAA" alt="">'
        '<img srcset="a.png 1x, https://img.example.org/b.png 2x" alt="">'
        '<iframe src="https://www.youtube.com/embed/x"></iframe>'
        '<div style="background-image: url(http://img.example.org/c.png)"></div>'
        '<script>const s = "https://not-loaded.example.org";</script></body></html>',
        encoding="utf-8",
    )
    (tmp_path / "local.css").write_text(
        '@font-face { src: url(fonts/a.woff2) } .x { background: url("../img/b.svg") }',
        encoding="utf-8",
    )
    (tmp_path / "local.js").write_text(
        'import { a } from "./a.mjs";\nconst b = await import("../b.mjs");\n',
        encoding="utf-8",
    )
    loads = sorted(
        line.split(" loads ")[1].split(" from ")[0]
        for line in check_site.check_hosts(tmp_path)
    )
    assert loads == [
        "//fonts.example.org/a.woff2",
        "http://img.example.org/c.png",
        "https://img.example.org/b.png",
        "https://img.example.org/bg.png",
        "https://www.youtube.com/embed/x",
    ]


def _without(program: str, tmp_path) -> dict:
    """An environment whose PATH finds Python but not ``program``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    assert shutil.which(program, path=str(bin_dir)) is None
    return {**os.environ, "PATH": str(bin_dir)}


def test_the_vendor_install_fails_without_npm_under_ci(tmp_path):
    env = _without("npm", tmp_path)
    install = [sys.executable, str(ROOT / "book" / "vendor" / "install.py")]
    failed = subprocess.run(
        install, env={**env, "CI": "true"}, capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 1 and "npm not found, and CI is set" in failed.stderr
    env.pop("CI", None)
    local = subprocess.run(install, env=env, capture_output=True, text=True, timeout=60)
    assert local.returncode == 0 and "CDNs" in local.stderr


def test_the_book_refuses_cdns_under_ci(tmp_path, monkeypatch):
    """Built without the vendored files (or Node.js) and with CI set, the book fails at
    once instead of loading widgets and KaTeX from CDNs; without CI it warns and goes on."""
    from sphinx.errors import ExtensionError

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        import offline_assets
    finally:
        sys.path.remove(str(ROOT / "book" / "_ext"))

    class Config:
        html_math_renderer = None

    monkeypatch.setattr(offline_assets, "vendored", lambda: False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(ExtensionError, match="CI is set: run `make vendor`"):
        offline_assets._configure(None, Config())
    monkeypatch.delenv("CI")
    offline_assets._configure(None, Config())  # a local build goes on, with CDNs


# A stand-in for Node.js's KaTeX server: it creates its socket file (bind), and only after
# ``delay`` seconds accepts connections (listen), as Node.js does on a loaded machine;
# a negative delay never listens, and "exit" quits at once.
FAKE_KATEX_SERVER = """
import socket, sys, time
path, delay = sys.argv[1], sys.argv[2]
if delay == "exit":
    sys.exit(3)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
if float(delay) < 0:
    time.sleep(600)
time.sleep(float(delay))
server.listen()
client, _ = server.accept()
client.sendall(b"ok")
time.sleep(600)
"""


def _fake_katex(tmp_path, delay):
    script = tmp_path / "server.py"
    script.write_text(FAKE_KATEX_SERVER, encoding="utf-8")

    class Server:
        @staticmethod
        def build_command(socket=None, port=None):
            return [sys.executable, str(script), str(socket), delay]

    return Server


def test_the_katex_server_is_waited_for_until_it_listens(tmp_path):
    """The build connects to the KaTeX server even when the server's socket file appears
    well before it accepts connections (the build once failed there with "Connection
    refused" on a loaded machine)."""
    start = _ext("offline_assets").start_katex_server
    process, sock = start(_fake_katex(tmp_path, "0.5"), tmp_path, timeout=30)
    try:
        assert sock.recv(2) == b"ok"
    finally:
        sock.close()
        process.kill()
        process.wait()


@pytest.mark.parametrize(
    ("delay", "message"),
    [("-1", "did not answer within 1 s"), ("exit", "exited with status 3")],
)
def test_a_katex_server_that_never_answers_is_stopped_with_a_message(
    tmp_path, monkeypatch, delay, message
):
    """A server that never listens, or dies, fails the build with a message, and is not
    left running: left running, it held the build's standard error open, so a test that
    waited for the build's output hung for its whole timeout."""
    from sphinx.errors import ExtensionError

    started = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", popen)
    with pytest.raises(ExtensionError, match=message):
        _ext("offline_assets").start_katex_server(
            _fake_katex(tmp_path, delay), tmp_path, timeout=1
        )
    assert len(started) == 1 and started[0].poll() is not None


def test_the_book_starts_katex_with_the_waiting_server(tmp_path):
    """Loading the book's extension puts the waiting start in sphinxcontrib-katex's place,
    with a startup allowance for a busy machine."""
    import sphinxcontrib.katex as katex

    offline_assets = _ext("offline_assets")

    class App:
        def setup_extension(self, name):
            assert name == "sphinxcontrib.katex"

        def connect(self, *args, **kwargs):
            pass

    offline_assets.setup(App())
    assert katex.KaTeXServer.start_server_process.__func__ is (
        offline_assets.start_katex_server
    )
    assert katex.STARTUP_TIMEOUT == offline_assets.KATEX_STARTUP_S


# --- What the browser checks: the runtime's hashes and the Content-Security-Policy ------


def test_merging_streams_leaves_the_executed_notebook_as_the_kernel_sent_it():
    """A cell whose printing came in two messages renders as one output, and the
    notebook saved for nbval keeps its two outputs, unmerged (myst-nb 1.4.0 merged them
    into the saved notebook's first output, and nbval's replay showed a line twice)."""
    from myst_nb.core import render
    from nbformat import NotebookNode

    stream_outputs = _ext("stream_outputs")
    outputs = [
        NotebookNode(output_type="stream", name="stdout", text="first"),
        NotebookNode(output_type="stream", name="stdout", text="\nsecond\n"),
    ]
    saved = copy.deepcopy(outputs)
    upstream = render.coalesce_streams
    try:
        stream_outputs.setup(None)
        merged = render.coalesce_streams(outputs)
    finally:
        render.coalesce_streams = upstream
    assert [o["text"] for o in merged] == ["first\n\nsecond\n"]  # myst-nb's merge
    assert outputs == saved
    # Without the extension, the outputs given are changed: when myst-nb no longer does
    # this, the extension can go.
    upstream(outputs)
    assert outputs[0]["text"] == "first\n\nsecond\n"


def _ext(name):
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "book" / "_ext"))


def test_the_site_lists_the_runtimes_hashes_and_the_check_compares_them(
    built_book, tmp_path
):
    """runtime.json holds the hashes of the runtime the site serves (what translate.mjs
    checks before it runs it), and a runtime changed after the build is caught."""
    html, result = built_book
    assert result.returncode == 0, "the book did not build"
    live_models = _ext("live_models")
    served = html / "_static" / "vendor" / "onnxruntime-web"
    recorded = json.loads((html / "_static" / "live" / "runtime.json").read_text())
    assert recorded == live_models.runtime_hashes(served)
    assert sorted(recorded["files"]) == sorted(live_models.RUNTIME.values())
    site = tmp_path / "html"
    shutil.copytree(html, site)
    loader = site / "_static" / "vendor" / "onnxruntime-web" / "ort.wasm.min.mjs"
    loader.write_text(loader.read_text(encoding="utf-8") + "\n;", encoding="utf-8")
    assert any(
        "runtime.json does not hold the hashes" in p
        for p in check_site.check_runtime(site)
    )
    (site / "_static" / "live" / "runtime.json").unlink()
    assert "runtime.json: missing" in check_site.check_runtime(site)[0]


def test_every_page_carries_its_policy_before_any_script(built_book):
    html, result = built_book
    assert result.returncode == 0, "the book did not build"
    content_policy = _ext("content_policy")
    # Every document (not the theme's HTML fragments in _static, which have no <head>).
    pages = [
        p
        for p in sorted(html.rglob("*.html"))
        if content_policy.HEAD.search(p.read_text(encoding="utf-8"))
    ]
    assert len(pages) >= 20

    def without_policy(text):
        meta = re.search(r'\n<meta http-equiv="Content-Security-Policy"[^>]*>', text)
        return text.replace(meta[0], "") if meta else text

    texts = {path: path.read_text(encoding="utf-8") for path in pages}
    handlers = content_policy.site_handlers([without_policy(t) for t in texts.values()])
    assert len(handlers) >= 2  # the theme's full-screen and print buttons
    with_widgets = 0
    for path, text in texts.items():
        head = text.split("</head>")[0]
        found = re.findall(
            r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', head
        )
        assert len(found) == 1, path
        assert (
            head.index("Content-Security-Policy") < head.find("<script")
            or "<script" not in head
        )
        # the policy allows exactly this page's inline scripts, and the site's handlers
        assert found[0] == content_policy.policy(without_policy(text), handlers), path
        assert "default-src 'self'" in found[0]
        # eval only where the widget manager runs (it compiles its schemas with it)
        widgets = 'type="application/vnd.jupyter.widget-view+json"' in text
        with_widgets += widgets
        assert ("'unsafe-eval'" in found[0]) == widgets, path
    assert 0 < with_widgets < len(pages)


def test_the_policy_hashes_inline_scripts_and_handlers_not_data(tmp_path):
    content_policy = _ext("content_policy")
    page = (
        '<html><head><meta charset="utf-8"><script>var a = 1;</script>'
        '<script type="application/vnd.jupyter.widget-state+json">{"a": 1}</script>'
        '<script src="_static/x.js"></script><script type="module">import "./y.mjs";</script>'
        '</head><body><button onclick="go(&quot;x&quot;)">go</button></body></html>'
    )
    scripts, handlers = content_policy.inline_hashes(page)
    assert scripts == sorted(
        {content_policy._hash("var a = 1;"), content_policy._hash('import "./y.mjs";')}
    )
    assert handlers == [content_policy._hash('go("x")')]
    out = content_policy.add_policy(page)
    assert out.startswith(
        '<html><head><meta charset="utf-8">\n<meta http-equiv="Content-Security'
    )
    assert "'unsafe-hashes'" in out and "'wasm-unsafe-eval'" in out
    with pytest.raises(ValueError, match="already has"):
        content_policy.add_policy(out)
    with pytest.raises(ValueError, match="no <head>"):
        content_policy.add_policy("<p>no head</p>")
