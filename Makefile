# Two commands do all the set-up: `make lab` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test test-browser lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch/torchvision are pinned to the releases the course is tested with.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install -e ".[dev]"
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab --ip=127.0.0.1 --notebook-dir=notebooks

# ruff, then every test, the browser tests included
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Only the tests of the course in a real Chromium (JupyterLab and Voila) and in a fresh Binder
# environment (`make test` runs them too). They need the system's Chromium (Debian:
# apt-get install chromium) and skip without it; about 18 minutes.
test-browser: $(STAMP)
	$(BIN)/python -m pytest -m browser

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV)
