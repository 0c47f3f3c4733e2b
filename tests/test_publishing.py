"""Publishing and forking: the Actions workflow, versions, licences, citation, hooks."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import (
    ROOT,
    RUNNER_SHELLS,
    WORKFLOW,
    job_script,
    job_steps,
    workflow,
)

import attnlab
from attnlab.train import checkpoints

sys.path.insert(0, str(ROOT / "book"))
import notebooks  # noqa: E402
import release  # noqa: E402

BIN = Path(sys.executable).parent
SETUP = ROOT / ".github" / "actions" / "setup" / "action.yml"


def _schema_check(schema: str, *paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _steps(job: dict) -> list[dict]:
    return job["steps"]


def _uses(job: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in _steps(job) if "uses" in step]


@pytest.mark.parametrize(
    "schema, path",
    [
        ("vendor.github-workflows", WORKFLOW),
        ("vendor.github-actions", SETUP),
        ("vendor.citation-file-format", ROOT / "CITATION.cff"),
    ],
    ids=["workflow", "action", "cff"],
)
def test_publishing_files_match_their_schemas(schema, path):
    result = _schema_check(schema, path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        WORKFLOW.read_text(encoding="utf-8").replace("runs-on:", "run-on:", 1)
    )
    assert _schema_check("vendor.github-workflows", broken).returncode != 0
    cff = tmp_path / "CITATION.cff"
    cff.write_text(
        (ROOT / "CITATION.cff")
        .read_text(encoding="utf-8")
        .replace("cff-version: 1.2.0", "cff-version: 9")
    )
    assert _schema_check("vendor.citation-file-format", cff).returncode != 0


def test_a_job_s_steps_run_as_a_runner_runs_them(tmp_path):
    """helpers.job_script, which builds the tests' book from the build job: each step in
    its own `bash -e` with its env and working directory, in order, the job stopping at
    the first that fails; `uses` steps left out; an expression refused."""
    (tmp_path / "sub").mkdir()
    steps = [
        {"uses": "actions/checkout@v4"},
        {"run": 'echo one; echo "$LEFT" > left', "env": {"LEFT": "kept"}},
        {"run": "pwd > here", "working-directory": "sub"},
        {"run": "false\necho after false > after"},
        {"run": "echo never > never"},
    ]
    config = {"jobs": {"demo": {"steps": steps}}}
    script = job_script("demo", tmp_path, config)
    done = subprocess.run(["bash", str(script)], cwd=tmp_path, timeout=60)
    assert done.returncode == 1
    assert [(tmp_path / f"step-{n}.rc").read_text().strip() for n in range(3)] == [
        "0",
        "0",
        "1",
    ]
    assert not (tmp_path / "step-3.rc").exists() and not (tmp_path / "never").exists()
    assert (tmp_path / "step-0.out").read_text() == "one\n"
    assert (tmp_path / "left").read_text() == "kept\n"
    assert Path((tmp_path / "sub" / "here").read_text().strip()) == tmp_path / "sub"
    assert not (tmp_path / "after").exists()  # -e: the step stopped at `false`
    config["jobs"]["demo"]["steps"] = [{"run": "echo ${{ github.sha }}"}]
    with pytest.raises(pytest.fail.Exception, match="only GitHub evaluates"):
        job_steps("demo", config)


@pytest.mark.slow
def test_the_workflow_s_build_job_builds_checks_and_uploads_the_book(
    book_build, built_book
):
    """The book every book test reads was built by the build job's own steps, run in
    order in a copy of the checkout (conftest.BookBuild): each passed, the site's check
    among them, after the build and on the folder the Pages step uploads; the smoke
    profile came from this session alone."""
    html, result = built_book
    steps = [book_build.step(s["run"]) for s in job_steps("build")]
    assert [s.returncode for s in steps] == [0] * len(steps), [
        (s.args, s.stdout[-2000:], s.stderr[-2000:]) for s in steps if s.returncode
    ]
    commands = [s.args for s in steps]
    book = next(n for n, c in enumerate(commands) if "make book" in c)
    check = next(n for n, c in enumerate(commands) if "check_site.py" in c)
    assert book < check and "three models verified" in steps[check].stdout
    upload = next(
        s
        for s in _steps(workflow()["jobs"]["build"])
        if "upload-pages-artifact" in s.get("uses", "")
    )
    assert (book_build.out / upload["with"]["path"]).resolve() == html.resolve()
    assert (html / "index.html").is_file()
    assert "ATTNLAB_PROFILE" not in WORKFLOW.read_text(encoding="utf-8")


def test_the_workflow_tests_pull_requests_and_publishes_main():
    """What only GitHub runs, read from the workflow: which job an event starts, the
    Pages actions after the job's own steps, the permissions, a time limit on each job
    (the steps themselves are run by the test above and by `make test` itself)."""
    config = workflow()
    assert config["on"]["push"]["branches"] == ["main"]
    assert "pull_request" in config["on"]
    jobs = config["jobs"]
    assert "pull_request" in jobs["test"]["if"]
    assert [s["run"] for s in job_steps("test")] == ["make test"]
    assert "refs/heads/main" in jobs["build"]["if"]
    steps = _steps(jobs["build"])
    last_run = max(n for n, s in enumerate(steps) if "run" in s)
    assert [s["uses"].split("@")[0] for s in steps[last_run + 1 :]] == [
        "actions/configure-pages",
        "actions/upload-pages-artifact",
    ]
    assert not any(s.get("continue-on-error") or "if" in s for s in steps)
    deploy = jobs["deploy"]
    assert deploy["needs"] == "build" and _uses(deploy) == ["actions/deploy-pages"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert config["permissions"] == {"contents": "read"}
    for name in ("test", "build"):
        assert _uses(jobs[name])[:2] == ["actions/checkout", "./.github/actions/setup"]
    assert all("timeout-minutes" in job for job in jobs.values())


def test_the_workflow_names_no_machine_path_and_no_repository():
    """The browser and the data are configured by environment variables, and a fork's
    workflow works unchanged (the repository URL lives in _config.yml only)."""
    text = WORKFLOW.read_text(encoding="utf-8") + SETUP.read_text(encoding="utf-8")
    assert "/usr/bin/chromium" not in text and "/work/" not in text
    assert notebooks.repository_url() not in text
    assert set(workflow()["env"]) >= {"ATTNLAB_DATA_DIR", "ATTNLAB_CHROMIUM"}


def test_the_workflow_caches_models_under_the_model_cache_key(tmp_path):
    """The cache key step prints attnlab.train.checkpoints.code_hash(): the key the library
    files its trained models under, so models are reused exactly when they are valid."""
    build = workflow()["jobs"]["build"]
    (key_step,) = [s for s in _steps(build) if s.get("id") == "models"]
    output = tmp_path / "github_output"
    env = {**os.environ, "GITHUB_OUTPUT": str(output)}
    subprocess.run(
        ["bash", "-c", key_step["run"]], cwd=ROOT, env=env, check=True, timeout=120
    )
    assert output.read_text().strip() == f"key={checkpoints.code_hash()}"
    (cache,) = [
        s for s in _steps(build) if s.get("uses", "").startswith("actions/cache")
    ]
    assert cache["with"]["path"] == "_build/models"
    assert cache["with"]["key"].startswith("models-${{ steps.models.outputs.key }}-")
    assert (
        cache["with"]["restore-keys"].strip()
        == "models-${{ steps.models.outputs.key }}-"
    )
    # The chapters' model cache is where the workflow caches it.
    assert checkpoints.models_dir().relative_to(
        Path(os.environ["ATTNLAB_BUILD_DIR"])
    ) == Path("models")


LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+) \\$")
HASH = re.compile(r"^    --hash=sha256:[0-9a-f]{64}(?: \\)?$")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_problems(text: str) -> list[str]:
    """What keeps a requirements file from being a full, hashed lock: a line that is
    neither a comment, an exact `name==version` pin nor one of its hashes, and a pin with
    no hash."""
    problems, pin, hashes = [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() == "" or line.lstrip().startswith("#"):
            continue
        if HASH.match(line) and pin:
            hashes += 1
            continue
        if pin and not hashes:
            problems.append(f"{pin}: no --hash")
        found = PIN.match(line)
        pin, hashes = (found["name"], 0) if found else (None, 0)
        if not found:
            problems.append(
                f"line {number} is not `name==version \\` or its hash: {line!r}"
            )
    if pin and not hashes:
        problems.append(f"{pin}: no --hash")
    return problems


def _pins(text: str) -> dict[str, str]:
    found = (
        PIN.match(line)
        or re.match(r"^(?P<name>[A-Za-z0-9][\w.-]*)==(?P<version>\S+)$", line)
        for line in text.splitlines()
    )
    return {_name(m["name"]): m["version"] for m in found if m}


def test_the_lock_pins_and_hashes_every_package_and_agrees_with_the_requirements():
    from packaging.version import Version

    text = LOCK.read_text(encoding="utf-8")
    assert "--generate-hashes" in text.split("\n", 8)[-2] + text[:600], (
        "requirements.lock comes from pip-compile --generate-hashes"
    )
    assert lock_problems(text) == []
    locked = _pins(text)
    top = _pins((ROOT / "requirements.txt").read_text(encoding="utf-8"))
    assert {"torch", "pip", "setuptools", "jupyter-book", "sphinx-book-theme"} <= set(
        top
    )
    for name, version in top.items():
        assert name in locked, (
            f"{name} is pinned in requirements.txt but not in the lock"
        )
        # torch's CPU build carries the local label +cpu; everything else is identical.
        assert Version(locked[name]).public == Version(version).public and (
            name == "torch" or locked[name] == version
        ), (name, version, locked[name])
    assert locked["torch"] == "2.13.0+cpu"
    # What the lock says came from requirements.txt is exactly what requirements.txt pins.
    blocks = [(PIN.match(b.split("\n", 1)[0]), b) for b in re.split(r"\n(?=\S)", text)]
    direct = {
        _name(pin["name"])
        for pin, b in blocks
        if pin and re.search(r"^    #( via|  ) -r requirements\.txt$", b, re.M)
    }
    assert direct == set(top)
    # The library's own dependencies (installed with --no-deps) are all in the lock,
    # at versions its ranges admit.
    import tomllib
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for line in project["project"]["dependencies"]:
        requirement = Requirement(line)
        version = locked.get(_name(requirement.name))
        assert version and requirement.specifier.contains(Version(version).public), line
    # d2l, installed on its own with --no-deps, is pinned and hashed the same way.
    d2l = (ROOT / "requirements-d2l.txt").read_text(encoding="utf-8")
    assert lock_problems(d2l) == [] and _pins(d2l) == {"d2l": "1.0.3"}


def test_the_lock_check_catches_a_float_a_range_and_a_missing_hash():
    good = "a==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via x\n"
    assert lock_problems(good) == []
    assert lock_problems("a>=1.0\n") != []
    assert lock_problems("a\n") != []
    assert lock_problems("a==1.0 \\\n    # via x\n") == ["a: no --hash"]
    assert lock_problems(good + "b==2.0 \\\n") == ["b: no --hash"]
    assert lock_problems(good + "-e .\n") != []
    assert lock_problems("a==1.0 \\\n    --hash=sha256:abc\n") != []


def test_every_install_checks_hashes_and_the_setup_action_caches_the_corpus():
    """The Makefile installs the lock and d2l in hash-checking mode (.ci/run and the
    workflow both go through it), and the library itself with nothing downloaded."""
    recipe = [
        line.strip()
        for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
        if "pip install" in line and not line.strip().startswith("#")
    ]
    assert any("--require-hashes -r requirements.lock" in r for r in recipe)
    assert any(
        "--require-hashes --no-deps -r requirements-d2l.txt" in r for r in recipe
    )
    for line in recipe:
        assert "--require-hashes" in line or (
            "--no-deps" in line
            and "--no-build-isolation" in line
            and line.endswith("-e .")
        ), line
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    setup = yaml.safe_load(SETUP.read_text(encoding="utf-8"))["runs"]["steps"]
    runs = [step.get("run", "") for step in setup]
    assert not any("pip install" in r for r in runs), (
        "the action installs only through make"
    )
    assert any(r.startswith("make .venv/.installed") for r in runs)
    python = next(
        s for s in setup if s.get("uses", "").startswith("actions/setup-python")
    )
    assert python["with"]["python-version"] == "3.11", (
        "the Python the lock is resolved for"
    )
    (cache,) = [s for s in setup if s.get("uses", "").startswith("actions/cache")]
    from attnlab.data import corpus

    assert cache["with"]["key"].endswith(corpus.FRA_ENG_SHA1)


def test_the_setup_action_downloads_the_corpus_when_the_cache_has_none(
    tmp_path, fra_eng_dir
):
    """The setup action's download step, run as a runner runs it (its ``env``'s
    ``${{ env.ATTNLAB_DATA_DIR }}`` a fresh folder here): with no corpus there, the
    library downloads it (from a file:// copy: ATTNLAB_FRA_ENG_URL) and checks it; with
    one, the step does nothing."""
    from attnlab.data import corpus

    (step,) = [
        s
        for s in yaml.safe_load(SETUP.read_text(encoding="utf-8"))["runs"]["steps"]
        if "fra_eng_text" in s.get("run", "")
    ]
    folder = tmp_path / "corpus"
    env = {
        **os.environ,
        "ATTNLAB_DATA_DIR": str(folder),
        "ATTNLAB_FRA_ENG_URL": (fra_eng_dir / "fra-eng.zip").as_uri(),
        **{
            key: value.replace("${{ env.ATTNLAB_DATA_DIR }}", str(folder))
            for key, value in step["env"].items()
        },
    }
    script = tmp_path / "step.sh"
    script.write_text(step["run"])
    shell = RUNNER_SHELLS[step["shell"]].replace("{0}", str(script)).split()
    run = functools.partial(
        subprocess.run, shell, cwd=ROOT, env=env, capture_output=True, text=True
    )
    done = run(timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert corpus.fra_eng_text(folder)  # its fra.txt checked against FRA_ENG_SHA1
    made = (folder / "fra-eng.zip").stat().st_mtime_ns
    again = run(timeout=60)
    assert again.returncode == 0 and again.stderr == ""
    assert (folder / "fra-eng.zip").stat().st_mtime_ns == made


PINNED = re.compile(
    r"^\s*(?:- )?uses: (?P<action>[\w.-]+/[\w./-]+)@(?P<ref>\S+)"
    r"(?:\s+# (?P<tag>v\d+(?:\.\d+)*))?\s*$"
)


def unpinned(text: str) -> list[str]:
    """The `uses:` lines of a workflow or action that name a third-party action by
    anything but a full commit SHA with its tag in a comment."""
    bad = []
    for line in text.splitlines():
        if "uses:" not in line or line.split("uses:", 1)[1].strip().startswith("./"):
            continue
        found = PINNED.match(line)
        if not (found and re.fullmatch(r"[0-9a-f]{40}", found["ref"]) and found["tag"]):
            bad.append(line.strip())
    return bad


def test_third_party_actions_are_pinned_by_commit_and_checkout_keeps_no_token():
    files = sorted((ROOT / ".github").rglob("*.yml"))
    assert WORKFLOW in files and SETUP in files
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert unpinned(text) == [], path
    # The check catches a tag, a branch, a short SHA and a SHA without its tag.
    for ref in (
        "@v4",
        "@main",
        "@11d5960",
        "@11d5960a326750d5838078e36cf38b85af677262",
    ):
        assert unpinned(f"      - uses: actions/checkout{ref}\n") != []
    assert unpinned("      - uses: ./.github/actions/setup\n") == []
    # Every checkout leaves no credentials in the clone's git config.
    checkouts = [
        step
        for job in workflow()["jobs"].values()
        for step in job["steps"]
        if step.get("uses", "").startswith("actions/checkout@")
    ]
    assert len(checkouts) == 3
    assert all(
        step.get("with", {}).get("persist-credentials") is False for step in checkouts
    )


# --- versions ---------------------------------------------------------------------------


def test_the_version_is_defined_once():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject
    assert 'version = { attr = "attnlab.__version__" }' in pyproject
    assert not re.search(r"^version\s*=\s*\"", pyproject, re.M)  # no second copy
    assert release.version() == attnlab.__version__
    assert importlib.metadata.version("attnlab") == attnlab.__version__


def test_changelog_citation_and_tag_agree_with_the_version():
    assert release.problems(f"v{attnlab.__version__}") == []
    assert release.released()[0][0] == attnlab.__version__
    assert any("is not v" in p for p in release.problems("v99.0.0"))
    command = [sys.executable, str(ROOT / "book" / "release.py"), "check", "v99.0.0"]
    assert subprocess.run(command, capture_output=True, timeout=60).returncode == 1


def test_a_changelog_without_the_version_is_caught(tmp_path, monkeypatch):
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text("# Changelog\n\n## [0.0.1] - 2020-01-01\n")
    monkeypatch.setattr(release, "CHANGELOG", changelog)
    assert any("CHANGELOG.md's newest section" in p for p in release.problems())


def test_the_colab_cell_installs_the_configured_branch_or_tag():
    url, ref = notebooks.repository_url(), notebooks.repository_ref()
    assert f'"attnlab @ git+{url}@{ref}"' in notebooks.colab_cell_source()
    pinned = notebooks.colab_cell_source(ref="v0.1.0")
    assert f'"attnlab @ git+{url}@v0.1.0"' in pinned


# --- licences, citation, contributing --------------------------------------------------


def test_licences_are_stated_in_the_repository_and_the_site_config():
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    content = (ROOT / "LICENSE-CONTENT.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in content and "creativecommons.org/licenses/by/4.0/" in content
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in readme and "MIT" in readme and "CC-BY 2.0" in readme
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    footer = config["html"]["extra_footer"]
    assert "creativecommons.org/licenses/by/4.0/" in footer and "tatoeba.org" in footer
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert (
        cff["license"] == ["MIT", "CC-BY-4.0"] and cff["version"] == attnlab.__version__
    )


def test_the_book_offers_issue_and_edit_buttons():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert (
        config["html"]["use_issues_button"] and config["html"]["use_edit_page_button"]
    )


DOCS = ("README.md", "CONTRIBUTING.md")
# A path the docs give; one with a placeholder (NN_topic, NAME-DEVICE, test_) is
# a pattern, not a file.
DOC_PATH = re.compile(
    r"(?:^|[\s`])((?:book|tests|code|benchmarks|chapters|\.ci|\.github)/[\w./-]+)"
)
PLACEHOLDER = re.compile(r"NN_|NAME|DEVICE|_$")


def test_the_docs_name_only_files_and_make_targets_that_exist():
    """Every file the README and CONTRIBUTING point to is in the repository, and every
    `make` command they give is one the Makefile can run (checked by `make -n`)."""
    text = "\n".join((ROOT / doc).read_text(encoding="utf-8") for doc in DOCS)
    paths = {p.rstrip(".") for p in DOC_PATH.findall(text) if not PLACEHOLDER.search(p)}
    assert len(paths) > 20 and "book/notebooks.py" in paths
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []
    targets = set(re.findall(r"\bmake ([a-z][a-z-]*)", text))
    assert {"test", "test-fast", "book"} <= targets
    for target in sorted(targets):
        dry = subprocess.run(
            ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert dry.returncode == 0, f"make {target}: {dry.stderr}"


def _resolves(dotted: str) -> bool:
    """Whether ``dotted`` (``attnlab.a.b.name``) is a module or a name in one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


def test_the_docs_name_only_library_code_that_exists():
    """Every ``from attnlab... import x`` and every ``attnlab.a.b`` the README,
    CONTRIBUTING and the unreleased changes give resolves in the library as it is."""
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    unreleased = changelog.split("## [Unreleased]", 1)[1].split("\n## [", 1)[0]
    text = unreleased + "\n".join(
        (ROOT / doc).read_text(encoding="utf-8") for doc in DOCS
    )
    names = {
        f"{module}.{name}"
        for module, name in re.findall(r"from (attnlab[\w.]*) import (\w+)", text)
    } | {n.rstrip(".") for n in re.findall(r"`(attnlab(?:\.\w+)+)", text)}
    assert len(names) > 20
    assert sorted(n for n in names if not _resolves(n)) == []


def test_the_readme_and_preface_say_what_a_fork_changes():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    for text in (readme, intro):
        assert "repository.url" in text and "sync-colab" in text
    assert "repository.branch" in readme and "GitHub Actions" in readme


def test_pre_commit_config_is_valid_and_names_existing_tools():
    config = ROOT / ".pre-commit-config.yaml"
    result = subprocess.run(
        [str(BIN / "pre-commit"), "validate-config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    hooks = [
        h for repo in yaml.safe_load(config.read_text())["repos"] for h in repo["hooks"]
    ]
    assert {"ruff", "notebooks", "release", "workflows", "citation"} <= {
        h["id"] for h in hooks
    }
    for hook in hooks:
        program, *rest = hook["entry"].split()
        # a tool of .venv, or one on the PATH (Node.js, for ESLint)
        found = (ROOT / program).is_file() or shutil.which(program)
        assert found, hook["id"]
        scripts = [
            ROOT / word for word in rest if word.endswith((".py", ".js", ".mjs"))
        ]
        assert scripts == [] or all(script.is_file() for script in scripts), hook["id"]


@pytest.mark.slow
def test_pre_commit_hooks_pass_on_the_repository(tmp_path):
    """Every hook, on every file, as a contributor's `pre-commit run --all-files`."""
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit"),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    result = subprocess.run(
        [str(BIN / "pre-commit"), "run", "--all-files"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
