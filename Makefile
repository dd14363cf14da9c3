# igsm-lab: each target is one command; together they document the workflow.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install data test lint bench clean

# A local virtual environment with torch pinned to 2.13.0 (a CPU wheel here) before anything else can pull CUDA.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

data: $(STAMP)
	$(PY) -m pretrain.make_data

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .

bench: $(STAMP)
	$(PY) benchmarks/generator.py
	$(PY) benchmarks/verifier.py
	$(PY) benchmarks/data.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
