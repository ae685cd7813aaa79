# featurebank — every target installs what it needs first (a fresh machine has only
# Python 3.11 and Java 17).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Two installs into one virtualenv: the product (runtime dependencies + the `cli` extra:
# deltalake for JVM-free look-ups) is all `make demo` needs; `make test` and the other
# developer targets add the dev extras (pytest, duckdb, moto, mypy, playwright...: about 1 GB
# more). The dev install includes the runtime one, so it stamps both.
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime
export PYTHONUNBUFFERED := 1

.PHONY: setup setup-runtime demo test typecheck bench bench-loop clean

setup: $(STAMP)

setup-runtime: $(RUNTIME_STAMP)

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -c constraints.txt -e .
	@touch $(RUNTIME_STAMP)

$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(RUNTIME_STAMP) $(STAMP)

demo: setup-runtime
	PYTHONPATH=tools $(BIN)/python -m featurebank_demo.demo --project .

test: setup
	$(BIN)/python -m mypy lib/featurebank tools/featurebank_demo
	$(BIN)/python -m mypy --strict lib/featurebank/definitions lib/featurebank/compile lib/featurebank/aggregators lib/featurebank/days.py
	$(BIN)/python -m pytest tests

# A real Spark standalone cluster (master + two workers on 127.0.0.1, from the installed
# pyspark): spark-submit of the packaged entry scripts with the packaged wheel, compared row for row with local mode.
# Prints the application ids the master registered and the row counts compared. Also part of
# `make test` (it found two bugs local mode hides); this target runs it alone.
.PHONY: cluster-test
cluster-test: setup
	$(BIN)/python -m pytest tests/test_cluster.py -v

bench: setup
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# The analytics engineer's loop (issue 18): two `make demo`s, then every look-up command and
# preview timed as fresh processes; a section of bench/RESULTS.md.
bench-loop: setup
	$(BIN)/python -m bench.loop

clean:
	rm -rf warehouse test-artifacts bench/out

# A single-node Spark image (Containerfile), built and run with podman or docker, whichever
# works here (scripts/container-engine.sh). container-base makes a local Debian bookworm base
# (debootstrap; root) for machines that cannot pull python:3.11-slim-bookworm; container uses
# it when it exists (or BASE_IMAGE=...). container-demo runs the demo inside with no network,
# then reads every Delta table it wrote with deltalake from outside.
.PHONY: container-base container container-demo
container-base:
	scripts/container-base.sh

container:
	scripts/container-build.sh

container-demo: setup
	scripts/container-demo.sh
