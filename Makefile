# The README's commands. `make demo` and `make test` each set up everything they need.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bridge demo

test: $(STAMP)
	$(BIN)/ruff check app sapsim tests bench
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check app sapsim tests bench
	$(BIN)/ruff format --check app sapsim tests bench
	$(BIN)/mypy app

bench: $(STAMP)
	$(BIN)/python bench/push.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bridge-demo.db*
