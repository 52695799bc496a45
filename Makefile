# Two commands do all the set-up: `make lab` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test test-browser lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch/torchvision are pinned to the releases the course is tested with. Without an NVIDIA
# GPU, PyTorch's CPU-only build (under 1 GB, where the default build takes about 6.5 GB) is
# tried first, from PyTorch's own index; where that cannot be reached, the default build.
TORCH        := torch==2.14.1 torchvision==0.29.1
TORCH_CPU    := torch==2.14.1+cpu torchvision==0.29.1+cpu
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

$(STAMP): pyproject.toml | $(BIN)/python
	@if ! command -v nvidia-smi >/dev/null 2>&1 && [ ! -e /proc/driver/nvidia ] \
	    && $(BIN)/pip install --quiet --retries 0 --timeout 15 \
	       --index-url $(TORCH_CPU_INDEX) $(TORCH_CPU) 2>/dev/null; then \
	    echo "installed PyTorch's CPU-only build (no NVIDIA GPU on this machine)"; \
	else \
	    $(BIN)/pip install $(TORCH) && \
	    echo "installed PyTorch's default build (CUDA; it runs on the CPU too)"; \
	fi
	$(BIN)/pip install -e ".[dev]"
	touch $(STAMP)

# `xai-course lab` passes --allow-root when run as root (Docker, many lab machines)
lab: $(STAMP)
	$(BIN)/xai-course lab --notebooks notebooks

# ruff, then every test, the browser tests included
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Only the tests of the course in a real Chromium (JupyterLab and Voila) and in a fresh Binder
# environment (`make test` runs them too). They need the system's Chromium (Debian:
# apt-get install chromium) and skip without it; about 18 minutes on 2 cores.
test-browser: $(STAMP)
	$(BIN)/python -m pytest -m browser

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV)
