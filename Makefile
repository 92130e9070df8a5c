# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := reports/binh-son-2021-h1

.PHONY: demo test bench clean

# `make bench BENCH_10M=1` adds the 10M-dossier audit (its data simulated once into bench-data/: 5 GB, ~5 min).

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/reconcile demo --out $(DEMO)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -n auto

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_audit.py $(if $(BENCH_10M),--ten-million)
	$(BIN)/python benchmarks/bench_workflows.py
	$(BIN)/python benchmarks/bench_census.py
	$(BIN)/python benchmarks/bench_apply.py
	$(BIN)/python benchmarks/bench_report.py
	$(BIN)/python benchmarks/bench_vendor_read.py
	$(BIN)/python benchmarks/bench_vendor.py --runs 3
	$(BIN)/python benchmarks/bench_store.py
	$(BIN)/python benchmarks/store_floor.py
	$(BIN)/python benchmarks/bench_review.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache bench-data
