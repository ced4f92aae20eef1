# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.12
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"

demo: install
	$(BIN)/policylab run --scenario october-2025 --seed 1 --out outputs/october-2025-seed1

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
