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

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "Python 3.10 or newer is needed")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch first, exactly this version, so that nothing resolves another build of it.
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -r requirements.txt
	# The reference implementation for tests and benchmarks; its own pins are ignored on purpose.
	$(BIN)/python -m pip install --no-deps d2l==1.0.3
	touch $(STAMP)

$(VENDOR): book/vendor/package.json book/vendor/package-lock.json book/vendor/install.py
	$(PYTHON) book/vendor/install.py

vendor: $(VENDOR)

book: $(STAMP) $(VENDOR)
	$(BIN)/jupyter-book build . --all
	@echo
	@echo "The book is built. Open: $(CURDIR)/_build/html/index.html"

test: $(STAMP) $(VENDOR)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

kernel: $(STAMP)
	$(BIN)/python -m ipykernel install --user --name attnlab --display-name "Python (attnlab)"

clean:
	rm -rf _build .pytest_cache
