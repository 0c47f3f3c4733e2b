# Attention, step by step — build the book and run the tests.
#   make book    create .venv if needed, execute every chapter (full profile), build _build/html
#   make test    the whole test suite (library, notebooks in the smoke profile, book, browser)
#   make test-fast  the library's tests only (skips those marked slow), in about a minute
#   make bench   run benchmarks/ (side-by-side speed; about 45 min on 2 CPU cores)
#   make kernel  register .venv as the Jupyter kernel "attnlab"
#   make clean   remove build outputs (keeps .venv and the downloaded corpus)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
VENDOR := book/vendor/static/vendor/html-manager/embed.js

.PHONY: book test test-fast bench kernel vendor clean

$(STAMP): requirements.lock requirements-d2l.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "requirements.lock is resolved for Python 3.11: make PYTHON=python3.11 (the library itself runs on 3.10 and newer)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# Every package pinned and checked against its hash (pip, setuptools and torch's CPU
	# build among them, so nothing can resolve the CUDA one): requirements.lock, which
	# pip-compile resolves from requirements.txt.
	$(BIN)/python -m pip install --require-hashes -r requirements.lock
	# The reference implementation for tests and benchmarks; its own pins are ignored on purpose.
	$(BIN)/python -m pip install --require-hashes --no-deps -r requirements-d2l.txt
	# The course's library, editable, built by the locked setuptools with nothing downloaded.
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(VENDOR): book/vendor/package.json book/vendor/package-lock.json book/vendor/install.py
	$(PYTHON) book/vendor/install.py

vendor: $(VENDOR)

# -n -W --keep-going: a broken reference or any warning fails the build, after listing them all.
book: $(STAMP) $(VENDOR)
	$(BIN)/jupyter-book build . --all -n -W --keep-going
	@echo
	@echo "The book is built. Open: $(CURDIR)/_build/html/index.html"

test: $(STAMP) $(VENDOR)
	$(BIN)/python -m pytest

test-fast: $(STAMP) $(VENDOR)
	$(BIN)/python -m pytest -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

kernel: $(STAMP)
	$(BIN)/python -m ipykernel install --user --name attnlab --display-name "Python (attnlab)"

clean:
	rm -rf _build .pytest_cache
