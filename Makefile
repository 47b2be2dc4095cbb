# The README's commands. `make demo` and `make test` each set up everything they need.
# the first Python 3.11 or newer on PATH (override: make test PYTHON=/path/to/python)
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && { echo $$p; break; }; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint audit bench lock docs-assets clean

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

# Re-fetch the /docs and /redoc assets vendored in app/shell/static/docs from the npm registry
# (needs npm; e.g. `make docs-assets SWAGGER_UI=5 REDOC=2` for the newest 5.x and 2.x), then record
# the versions and sha256 sums it prints in app/shell/static/docs/README.md.
SWAGGER_UI ?= 5.35.0
REDOC      ?= 2.5.4
DOCS_ASSETS := app/shell/static/docs
docs-assets:
	@command -v npm >/dev/null || { echo "error: npm is needed to fetch the docs assets"; exit 1; }
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	(cd "$$tmp" && npm pack --silent swagger-ui-dist@$(SWAGGER_UI) redoc@$(REDOC) >/dev/null); \
	mkdir "$$tmp/s" "$$tmp/r"; \
	tar xzf "$$tmp"/swagger-ui-dist-*.tgz -C "$$tmp/s"; tar xzf "$$tmp"/redoc-*.tgz -C "$$tmp/r"; \
	s="$$tmp/s/package"; r="$$tmp/r/package"; d=$(DOCS_ASSETS); \
	cp "$$s/swagger-ui-bundle.js" "$$s/swagger-ui-bundle.js.LICENSE.txt" "$$s/swagger-ui.css" \
	   "$$s/favicon-32x32.png" "$$d/"; \
	cp "$$s/LICENSE" "$$d/swagger-ui-LICENSE.txt"; cp "$$s/NOTICE" "$$d/swagger-ui-NOTICE.txt"; \
	cp "$$r/bundles/redoc.standalone.js" "$$r/bundles/redoc.standalone.js.LICENSE.txt" "$$d/"; \
	cp "$$r/LICENSE" "$$d/redoc-LICENSE.txt"; \
	echo "swagger-ui-dist $$(node -p "require('$$s/package.json').version"), redoc $$(node -p "require('$$r/package.json').version")"; \
	cd "$$d" && sha256sum swagger-ui-bundle.js swagger-ui.css favicon-32x32.png redoc.standalone.js

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bridge-demo.db*
