# finops: `make run` starts the service on the embedded default, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install bench-ingest bench-rollup bench-guard bench-metrics clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@bash scripts/run.sh

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py $(BENCH_ARGS)

bench-rollup: $(STAMP)
	$(BIN)/python bench/rollup.py $(BENCH_ARGS)

bench-guard: $(STAMP)
	$(BIN)/python bench/guard.py $(BENCH_ARGS)

bench-metrics: $(STAMP)
	$(BIN)/python bench/metrics.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var/*.sqlite3* var/broker var/static
