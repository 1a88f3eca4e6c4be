# Two commands on a fresh clone:  `make demo` (the example app, scripted) and `make test`.
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo run test lint pytest test-versions test-postgres stress bench docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## The main job: start the example app and send it signed Stripe events.
demo: $(STAMP)
	$(BIN)/python examples/demo.py

## The example app alone, on http://127.0.0.1:5000 (point `stripe listen` at it).
run: $(STAMP)
	$(BIN)/flask --app examples/simple_app/app.py run

## Lint, types and the whole test suite (SQLite; PostgreSQL too when DATABASE_URL is set).
## A few minutes (some 1,700 tests, headless-browser and demo runs among them).
test: lint pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict src

pytest: $(STAMP)
	@echo "Running the whole suite: a few minutes (one file: $(BIN)/pytest tests/test_x.py -q)."
	$(BIN)/pytest

## The suite on the lowest and the newest allowed versions, and on the built wheel (nox, uv).
test-versions: $(STAMP)
	$(BIN)/nox -s lowest newest wheel

## The suite against a throw-away local PostgreSQL (Debian's postgresql package).
test-postgres: $(STAMP)
	DATABASE_URL=$$(.ci/postgres start) $(BIN)/pytest

## Concurrent duplicate deliveries to gunicorn on PostgreSQL: nothing lost, nothing twice.
stress: $(STAMP)
	DATABASE_URL=$$(.ci/postgres start) $(BIN)/python tests/stress/webhook_stress.py --restart-db ".ci/postgres restart"

## Benchmarks: ours vs the guide's bare handler, ratios from the same run (minutes).
bench: $(STAMP)
	DATABASE_URL=$${DATABASE_URL:-$$(.ci/postgres start)} $(BIN)/python -m benchmarks.run

## The documentation site (Sphinx, furo, MyST) in docs/_build/html; any warning fails it.
docs: $(STAMP)
	$(BIN)/sphinx-build -q -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) .nox .pytest_cache .mypy_cache .ruff_cache build *.egg-info src/*.egg-info docs/_build
