"""Short runs start fast (issue 20): the session's settings are chosen by the run's size before
the JVM starts — a short run (daily run, look-up) on a local master gets the C1-only JIT, a
backfill never does; every local session replays the Delta log in few tasks. No JVM here."""

from __future__ import annotations

import os

import pytest

from featurebank import cli
from featurebank.io.spark import (
    LOCAL_GC_OPTION,
    LONG,
    RUN_SIZE_ENV,
    SHORT,
    SHORT_CODE_CACHE_OPTION,
    SHORT_JIT_OPTION,
    run_size,
    session_conf,
    spark_output,
)

JAVA = "spark.driver.extraJavaOptions"


def sized(argv: list[str]) -> str:
    args = cli.build_parser().parse_args(argv)
    return run_size(args.command, cli._dates_of(args))


def test_a_daily_run_is_short_and_a_backfill_is_long():
    assert sized(["run", "g", "--date", "2024-03-01"]) == SHORT
    assert sized(["run", "g"]) == SHORT  # today
    assert sized(["run", "--all", "--missing"]) == SHORT  # --missing without dates: today
    assert sized(["run", "g", "--start", "2024-03-01", "--end", "2024-03-03"]) == SHORT
    assert sized(["run", "g", "--start", "2024-03-01", "--end", "2024-03-04"]) == LONG
    assert sized(["run", "g", "--start", "2024-01-01", "--end", "2024-12-31"]) == LONG
    assert sized(["run", "g", "--restate"]) == LONG  # every published date
    assert sized(["run", "g", "--start", "2024-03-01"]) == LONG  # a usage error later; never short by accident
    assert sized(["run", "g", "--start", "2024-03-05", "--end", "2024-03-01"]) == LONG


def test_lookups_are_short_and_training_sets_are_long():
    assert sized(["preview", "g", "--date", "2024-03-01"]) == SHORT
    assert sized(["history", "g"]) == SHORT
    assert run_size("explain", None) == SHORT
    assert run_size("training-set", None) == LONG
    assert run_size("vacuum", 1) == LONG


def test_a_short_local_session_gets_c1_only_and_a_backfill_does_not(monkeypatch):
    monkeypatch.delenv(RUN_SIZE_ENV, raising=False)
    monkeypatch.setenv("FEATUREBANK_JVM_ARCHIVE", "off")  # its options: tests/test_class_archive.py
    monkeypatch.delenv("FEATUREBANK_SPARK_MASTER", raising=False)
    short = session_conf(None, "local", SHORT)
    long = session_conf(None, "local", LONG)
    unsized = session_conf(None, "local")
    assert short[JAVA].split() == ["-Duser.timezone=UTC", SHORT_JIT_OPTION, SHORT_CODE_CACHE_OPTION, LOCAL_GC_OPTION]
    for option in (SHORT_JIT_OPTION, SHORT_CODE_CACHE_OPTION):
        assert option not in long[JAVA] and option not in unsized[JAVA]
    for conf in (short, long, unsized):  # local: the log replays in few tasks whatever the size
        assert conf["spark.databricks.delta.snapshotPartitions"] == "2"
        assert conf["spark.sql.ansi.enabled"] == "true"
    assert {k: v for k, v in short.items() if k != JAVA} == {k: v for k, v in long.items() if k != JAVA}


def test_the_size_comes_from_the_environment_the_cli_sets(monkeypatch):
    monkeypatch.delenv(RUN_SIZE_ENV, raising=False)
    with spark_output(size=SHORT):
        assert os.environ[RUN_SIZE_ENV] == SHORT
        assert SHORT_JIT_OPTION in session_conf(None, "local")[JAVA]
    assert RUN_SIZE_ENV not in os.environ  # restored
    monkeypatch.setenv(RUN_SIZE_ENV, LONG)  # a caller who set it meant it
    with spark_output(size=SHORT):
        assert SHORT_JIT_OPTION not in session_conf(None, "local")[JAVA]


@pytest.mark.parametrize("platform", ["glue", "emr", "submit"])
def test_never_on_a_cluster(platform, monkeypatch):
    conf = session_conf(None, platform, SHORT)
    assert SHORT_JIT_OPTION not in conf.get(JAVA, "") and LOCAL_GC_OPTION not in conf.get(JAVA, "")
    assert "spark.databricks.delta.snapshotPartitions" not in conf


def test_a_short_run_on_a_cluster_master_keeps_the_full_jit(monkeypatch):
    monkeypatch.setenv("FEATUREBANK_SPARK_MASTER", "spark://head:7077")
    assert SHORT_JIT_OPTION not in session_conf(None, "local", SHORT)[JAVA]
    monkeypatch.setenv("FEATUREBANK_SPARK_MASTER", "local[2]")
    assert SHORT_JIT_OPTION in session_conf(None, "local", SHORT)[JAVA]


def _final_flag(options: list[str], flag: str) -> str:
    """A JVM flag's value as HotSpot settles it with `options` (a real JVM, no Spark); raises when
    the JVM refuses the options (two collectors, for one)."""
    import re
    import subprocess

    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else "java"  # as spark-class
    flags = subprocess.run([java, *options, "-XX:+PrintFlagsFinal", "-version"], capture_output=True,
                           text=True, check=True).stdout
    found = re.search(rf"\b{flag}\s*=\s*(\w+)", flags)
    assert found, flags[-500:]
    return found.group(1)


def code_cache_bytes(options: list[str]) -> int:
    """The code cache a JVM started with `options` reserves (HotSpot's final flag value)."""
    return int(_final_flag(options, "ReservedCodeCacheSize"))


def test_a_short_runs_jvm_keeps_a_code_cache_it_cannot_fill(monkeypatch):
    """C1 alone shrinks HotSpot's code cache to 48 MiB, and a full cache stops all compiling for the
    rest of the process; the bench's daily run alone used 39 MiB of it. A short run's JVM keeps
    tiered compilation's 240 MiB. A real JVM (no Spark): the flags as HotSpot settles them."""
    monkeypatch.delenv("FEATUREBANK_SPARK_MASTER", raising=False)
    mib = 1024 * 1024
    assert code_cache_bytes([SHORT_JIT_OPTION]) <= 48 * mib  # why the second option is there
    short_options = session_conf(None, "local", SHORT)[JAVA].split()
    assert code_cache_bytes(short_options) >= 240 * mib


HUGE = "spark.sql.codegen.hugeMethodLimit"


@pytest.mark.parametrize("platform", ["local", "glue", "emr", "submit"])
def test_every_session_compiles_wide_stages_and_conf_may_say_otherwise(platform, monkeypatch):
    """A stage whose generated method HotSpot would never compile (over 8000 bytes of bytecode) runs
    without whole-stage code generation, on every platform (notes/20-huge.md); a project's conf wins."""
    from featurebank.definitions.config import Config, SparkSettings
    from featurebank.io.spark import EXECUTION_CONF

    monkeypatch.delenv(RUN_SIZE_ENV, raising=False)
    assert EXECUTION_CONF[HUGE] == "8000"  # HotSpot's HugeMethodLimit, not Spark's default 65535
    assert session_conf(None, platform)[HUGE] == "8000"
    config = Config(env="x", feature_root="/tmp/f", spark=SparkSettings(((HUGE, "65535"),)))
    assert session_conf(config, platform)[HUGE] == "65535"


def test_the_test_session_runs_as_production_does(spark):
    """Every engine test here judges the bytes of the execution production uses."""
    assert spark.conf.get(HUGE) == "8000"


@pytest.mark.parametrize("size", [SHORT, LONG])
def test_a_local_jvm_collects_for_throughput_unless_conf_or_the_environment_chose(size, monkeypatch):
    """Every local session's JVM runs the parallel collector (a batch job: no pauses to hide, notes/
    20-session17.md); a collector in conf's java options or in JAVA_TOOL_OPTIONS is kept (a JVM given
    two refuses to start); a cluster's JVMs are never touched."""
    from featurebank.definitions.config import Config, SparkSettings

    for name in ("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS", "FEATUREBANK_SPARK_MASTER"):
        monkeypatch.delenv(name, raising=False)
    ours = session_conf(None, "local", size)[JAVA].split()
    assert ours.count(LOCAL_GC_OPTION) == 1
    assert _final_flag(ours, "UseParallelGC") == "true"
    mine = Config(env="x", feature_root="/tmp/f", spark=SparkSettings(((JAVA, "-XX:+UseG1GC -Xss4m"),)))
    kept = session_conf(mine, "local", size)[JAVA].split()
    assert LOCAL_GC_OPTION not in kept and _final_flag(kept, "UseG1GC") == "true"
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-XX:+UseSerialGC")
    assert LOCAL_GC_OPTION not in session_conf(None, "local", size)[JAVA]
    monkeypatch.delenv("JAVA_TOOL_OPTIONS")
    monkeypatch.setenv("FEATUREBANK_SPARK_MASTER", "spark://head:7077")
    assert LOCAL_GC_OPTION not in session_conf(None, "local", size).get(JAVA, "")
