# Dataward: the two commands a newcomer needs are `make demo` and `make test`.
# Both create the virtual environment themselves (idempotent).

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.dataward-installed
TORCH_VERSION ?= 2.13.0
export DATAWARD_HOME ?= $(CURDIR)/.dataward
# Tests and demo must never reach for the network or a model hub.
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test test-fast bench bench-quick bench-check lint clean help

help:
	@echo "make demo   - set up, then run the whole pipeline on the bundled example"
	@echo "make test   - set up, then run the whole test suite (PostgreSQL, Airflow, slow tests too)"
	@echo "make test-fast - the inner loop: no Airflow, no PostgreSQL, nothing marked slow"
	@echo "make bench  - detection and speed benchmarks (prints figures)"
	@echo "make bench-check - the detection regression gate (held-out subset against benchmarks/results/)"
	@echo "make lint   - ruff (with complexity limits), import-linter layering contracts, mypy, DAG-parse import check"

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	@# Without a GPU take the CPU build of torch first, so no multi-GB CUDA build is fetched.
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  echo "GPU found: installing torch $(TORCH_VERSION) (CUDA build)"; \
	  $(PIP) install "torch==$(TORCH_VERSION)"; \
	else \
	  echo "no GPU: installing the CPU build of torch $(TORCH_VERSION)"; \
	  $(PIP) install "torch==$(TORCH_VERSION)" 2>&1 | grep -v "^WARNING: Location" || true; \
	  $(PY) -c "import torch" 2>/dev/null || $(PIP) install "torch==$(TORCH_VERSION)" --index-url https://download.pytorch.org/whl/cpu; \
	fi
	@$(PIP) install -e ".[test,bench,ray]" 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "import dataward, torch, airflow, great_expectations, cleanlab" >/dev/null 2>&1 || { echo "setup: the environment does not import; see the pip output above" >&2; exit 1; }
	@touch $(STAMP)
	@echo "environment ready in $(VENV)"

demo: setup
	@bash scripts/demo.sh

# Tests run in TEST_WORKERS processes (pytest-xdist), one test file to a worker at a time so
# that module-scoped fixtures (an Airflow DB, an API server, versions built once) are built
# once; TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test: setup
	@bash scripts/test-deps.sh
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# The inner loop: everything but the tests marked airflow, postgres or slow (pyproject.toml).
test-fast: setup
	@bash scripts/test-deps.sh
	$(PY) -m pytest $(XDIST) -m "not airflow and not postgres and not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) scripts/check_dag_imports.py

bench: setup
	$(PY) benchmarks/run_all.py

# The detection regression gate: a quick held-out subset (a wide pixel table, a text
# table, a mixed table) must not get worse than the committed baseline beyond the spread
# measured over seeds (benchmarks/bench_matrix.py --gate; CI runs it).
bench-check: setup
	$(PY) benchmarks/bench_matrix.py --gate

bench-quick: setup
	$(PY) benchmarks/run_all.py --quick

clean:
	rm -rf .dataward .pytest_cache .hypothesis build dist *.egg-info
