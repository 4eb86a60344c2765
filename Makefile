# The two commands: `make run` and `make test`. Each sets up .venv itself on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned so pip takes this machine's local CPU wheel instead of a multi-GB CUDA build.
TORCH := torch==2.13.0
export HF_HUB_OFFLINE := 1

.PHONY: run test lint install clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/minibert verify

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check minibert tests scripts
	$(BIN)/ruff format --check minibert tests scripts

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
