# Every target installs what it needs into .venv, so a fresh clone works with one command.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install servers real-engine engine-setup demo test check lint typecheck unit bench bench-workers bench-memory schema clean dist docs docs-serve metrics-doc

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,dist,docs]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the exporter and report tests run for real (see the script).
servers:
	tools/install-test-servers

# llama.cpp's llama-server and Gemma 3 270M, built into a cache outside the repo (the script
# says where; re-used while its pins match): the real engine tests/engine/ profile.
real-engine:
	tools/real-engine

# Test set-up: in CI a failed build fails the run; elsewhere the engine tests skip, saying why.
engine-setup:
	@tools/real-engine >/dev/null || [ "$${CI:-}" != true ]

demo: install
	$(BIN)/lens run scenarios/quickstart.yaml -o results/quickstart.json

lint: install
	$(BIN)/ruff check lens tests bench
	$(BIN)/ruff format --check lens tests bench
	$(BIN)/lint-imports  # the layer contracts in pyproject.toml [tool.importlinter]

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest --cov --cov-report=term --cov-fail-under=90

test: servers engine-setup lint typecheck unit docs

check: test

bench: install
	$(BIN)/python -m bench

# Just the worker sections of make bench (1,024 streams, zero-delay absorption, 1,000 req/s).
bench-workers: install
	$(BIN)/python -m bench.bench_workers

# Ten minutes at 1,000 req/s on the simulator: RSS per 100k requests (README: Long runs).
bench-memory: install
	$(BIN)/python -m bench.bench_memory --rate 1000 --minutes 10

schema: install
	$(BIN)/lens schema --write schemas

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache results dist site

# --- packaging: the sdist and the wheel of the distribution `llm-latency-lens` -------------
dist: install
	rm -rf dist
	$(BIN)/python -m build --sdist --wheel --outdir dist .
	$(BIN)/twine check --strict dist/*

# --- documentation site: docs/ -> site/, every warning an error; builds offline -----------
docs: install metrics-doc
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# docs/metrics.md: its tables rendered from the metric catalogue (lens/metric_catalog.py).
metrics-doc:
	$(BIN)/python tools/gen_metrics_doc.py

docs-serve: install
	$(BIN)/mkdocs serve
