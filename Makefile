# featurebank — every target installs what it needs first (a fresh machine has only
# Python 3.11 and Java 17).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Two installs into one virtualenv: the product (its runtime dependencies, deltalake for
# JVM-free look-ups among them) is all `make demo` needs; `make test` and the other
# developer targets add the dev extras (pytest, duckdb, moto, mypy, playwright...: about 1 GB
# more). The dev install includes the runtime one, so it stamps both.
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime
export PYTHONUNBUFFERED := 1

.PHONY: setup setup-runtime demo test typecheck bench bench-loop bench-small clean

# The JVM class archive (lib/featurebank/io/class_archive.py): local Spark sessions start ~2.5 s
# faster with it. Made once per install (~1 min); a failure to make it only prints a warning.
CLASS_ARCHIVE := $(VENV)/.class-archive

setup: $(STAMP) $(CLASS_ARCHIVE)

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

$(CLASS_ARCHIVE): $(STAMP)
	$(BIN)/python -m featurebank.io.class_archive
	@touch $(CLASS_ARCHIVE)

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

# Whole processes at small scale (issue 20): `featurebank run` / `training-set` as a user runs
# them, JVM start included, against DuckDB processes; a section of bench/RESULTS.md.
bench-small: setup
	$(BIN)/python -m bench.small

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

# The Spark 4 lane (issue 24; AWS Glue 6.0 parity): Python 3.13 (scripts/find-python313.sh says
# where it comes from), pyspark 4.1 + delta-spark 4.3 (Maven io.delta:delta-spark_4.1_2.13), GX,
# pinned in constraints-spark4.txt. test-spark4 runs the correctness core on it: the aggregation
# and point-in-time oracles, numeric contract, rows, gate, publish, training sets, the
# broken-definitions corpus, runner, ANSI, the portability and lane-parity tests, and the demo.
# test-all = test + test-spark4 (notes/24-spark4.md has the times).
VENV4 := .venv-spark4
BIN4 := $(VENV4)/bin
STAMP4 := $(VENV4)/.installed
CORE_TESTS := tests/test_aggregate.py tests/test_aggregators.py tests/test_kernel.py tests/test_numeric_contract.py tests/test_pit.py \
	tests/test_rows.py tests/test_gate.py tests/test_publish.py tests/test_training.py tests/test_definitions.py \
	tests/test_runner.py tests/test_ansi.py tests/test_spark4_portability.py tests/test_demo.py
# The fast subset CI runs on the lane (notes/24-spark4.md: why these): the aggregators' phases, the
# backfill's kernel and the aggregation oracle (mapInArrow's Arrow types differ between lanes), the
# point-in-time oracle, the broken-definitions corpus and the ANSI sentences; minutes, not the
# lane's hour (the numeric contract and portability files are the slow ones; test-spark4 has them).
CORE_TESTS_FAST := tests/test_aggregators.py tests/test_kernel.py tests/test_aggregate.py tests/test_pit.py \
	tests/test_definitions.py tests/test_ansi.py

.PHONY: setup-spark4 test-spark4 test-spark4-fast test-all lanes-compare

$(BIN4)/python:
	@py=$$(scripts/find-python313.sh) || exit 2; echo "Spark 4 lane: $$py"; $$py -m venv $(VENV4)
	$(BIN4)/pip install --quiet --upgrade pip

$(STAMP4): pyproject.toml constraints-spark4.txt | $(BIN4)/python
	$(BIN4)/pip install --quiet -c constraints-spark4.txt -e '.[dev]'
	@touch $(STAMP4)

setup-spark4: $(STAMP4)

test-spark4: setup-spark4 setup
	$(BIN4)/python -m pytest -p no:cacheprovider $(CORE_TESTS)

test-spark4-fast: setup-spark4 setup
	$(BIN4)/python -m pytest -p no:cacheprovider $(CORE_TESTS_FAST)

test-all: test test-spark4

# The demo on both lanes, the five tables and card_fraud_v1 compared value by value.
lanes-compare: setup setup-spark4
	$(BIN)/python scripts/compare-lanes.py --python35 $(BIN)/python --python41 $(BIN4)/python
