# The README's commands. `make demo` and `make test` each set up everything they need.
# the first Python 3.11 or newer on PATH (override: make test PYTHON=/path/to/python)
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && { echo $$p; break; }; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint audit bench lock clean

$(STAMP): pyproject.toml constraints.txt
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or newer is needed (none on PATH)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -c constraints.txt
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bridge demo

# The fast, offline checks run with every `make test`; pip-audit needs the network and the
# day's advisory database, so it lives in `make lint` (and `make audit`), where a vulnerable
# dependency or an unreachable advisory service is reported without making the suite flaky.
test: $(STAMP)
	$(BIN)/ruff check app sapsim tests bench
	$(BIN)/mypy app
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check app sapsim tests bench
	$(BIN)/ruff format --check app sapsim tests bench
	$(BIN)/mypy app
	$(MAKE) --no-print-directory audit

# Known vulnerabilities in the installed dependencies (PyPI advisory database).
audit: $(STAMP)
	$(BIN)/pip-audit --skip-editable --progress-spinner off

bench: $(STAMP)
	$(BIN)/python bench/push.py

# Newest releases within pyproject's ranges, written to constraints.txt; run `make test` after.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip
	.venv-lock/bin/pip install --quiet -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; .venv-lock/bin/pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bridge-demo.db*
