# featurebank — every target installs what it needs first (a fresh machine has only
# Python 3.11 and Java 17).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test typecheck bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: setup
	$(BIN)/python -m featurebank.demo --project .

test: setup
	$(BIN)/python -m mypy lib/featurebank/definitions lib/featurebank/plan.py
	$(BIN)/python -m pytest tests

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf warehouse test-artifacts bench/out
