# Two entry points, each doing all set-up on a fresh machine with only Python 3.11+:
#   make book   -> builds the whole book into _build/html
#   make test   -> runs the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Use the offline copy of the datasets beside the checkout when it exists (CI, this workplace);
# otherwise torchvision downloads into ~/.cache/vaemi/data.
ifneq ($(wildcard ../shared/data/MNIST/raw),)
export VAEMI_DATA ?= $(abspath ../shared/data)
endif
export MPLBACKEND := Agg
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: book test setup check-clean bench clean

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

book: $(STAMP)
	$(PY) -m vaemi.book build --profile book

test: $(STAMP)
	$(PY) -m vaemi.book prepare --profile smoke --out _build/nbval
	VAEMI_RESULTS_DIR=$(CURDIR)/_build/nbval/results $(PY) -m pytest tests _build/nbval --nbval-lax -p no:cacheprovider

check-clean: $(STAMP)
	$(PY) -m vaemi.book check-clean

bench: $(STAMP)
	$(PY) benchmarks/epoch_time.py

clean:
	rm -rf _build results
