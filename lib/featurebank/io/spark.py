"""The one SparkSession builder, for every place a job runs.

- local: `pyspark` from PyPI; Delta's jars are resolved by Spark from Maven Central into the
  Ivy cache (`~/.ivy2`) on the first start and reused afterwards, so later starts need no
  network.
- submit: launched by `spark-submit` (EMR steps, a standalone cluster): the JVM already
  exists with whatever `--packages`/`--jars` and `--master` gave it; we only add Delta's SQL
  settings, and make a `--py-files` wheel importable on the executors too.
- glue / emr: the platform supplies Delta's jars; we only add the SQL extension and catalog.

Settings come from `conf/<env>.yaml` (`spark.conf`), over the local defaults below, which are
sized for a 2-core, 24 GiB machine. The session time zone is always the project time zone,
so day boundaries and naive timestamps mean what SPEC says.

Spark's own output never reaches stdout (a command's result goes there). Two environment
variables, set by the CLI and read here, decide where the rest goes:
- `FEATUREBANK_SPARK_LOG_LEVEL` (`LOG_LEVEL_ENV`): the level of Spark's log once the session is
  up (default ERROR; the CLI sets OFF, `--debug` ERROR; `default` leaves Spark's own level);
- `FEATUREBANK_SPARK_LOG_FILE` (`JVM_LOG_ENV`): a file a local JVM writes its stdout and stderr
  to (Ivy's resolution report, log4j's start-up warnings) instead of our stderr; the CLI sets it
  unless `--verbose`. A JVM that fails to start is reported with the end of that file.

A third, `FEATUREBANK_RUN_SIZE` (`RUN_SIZE_ENV`), is the run's size as the CLI knows it before the
JVM starts (`run_size`): a `short` run (a look-up command, a run of at most `SHORT_RUN_DATES`
dates) on a local master gets the C1-only JIT (`SHORT_JIT_OPTION`: half the start-up and
short-job time, but twice the CPU on long compute, so never for a backfill); see `size_conf`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurebank.definitions.config import AwsSettings, Config

DELTA_SQL_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# Needed on every platform (spark-submit, EMR, Glue), not only locally: Parquet from
# pandas/pyarrow stores nanosecond timestamps, which Spark 3.5 refuses; read them as longs
# and let engine.sources convert them (SPEC: read with no user step).
READ_CONF = {"spark.sql.legacy.parquet.nanosAsLong": "true"}

# SQL semantics, the same on both Spark lanes and every platform (SPEC "Numbers"; issue 24):
# ANSI mode (Spark 4's default) makes overflow, an invalid cast and division by zero fail the
# run instead of giving NULL or a wrapped number. Applied after conf's own `spark.conf`, so
# that no environment quietly turns it off; also set on a session someone else started.
SEMANTICS_CONF = {"spark.sql.ansi.enabled": "true"}

# How Spark executes, on every platform (before conf's own `spark.conf`, which may change it).
# Spark compiles a stage's row loop into Java methods, and HotSpot never JIT-compiles a method of
# more than 8000 bytes of bytecode (its HugeMethodLimit); Spark's own limit is the JVM's 65535, so
# a wide stage (a group's finaliser: every feature's exact decimals and guards; the profiles'
# buckets) ran in the bytecode interpreter. At 8000 Spark runs such a stage without whole-stage
# code generation instead: the same expressions and bytes, compiled. Measured (issue 20,
# notes/20-huge.md): the bench backfill's compute at scale 0.1 62.0 s / 120 CPU-s -> 37.4 s / 73.
EXECUTION_CONF = {"spark.sql.codegen.hugeMethodLimit": "8000"}

# Delta's session defaults for new tables' properties: conf's `retention` (see retention.py).
RETENTION_DEFAULTS = ("spark.databricks.delta.properties.defaults.logRetentionDuration",
                      "spark.databricks.delta.properties.defaults.deletedFileRetentionDuration")


def retention_conf(days: int) -> dict[str, str]:
    """The session settings that give every new Delta table `days` of log and deleted-file retention."""
    return {key: f"interval {days} days" for key in RETENTION_DEFAULTS}


LOG_LEVEL_ENV = "FEATUREBANK_SPARK_LOG_LEVEL"
JVM_LOG_ENV = "FEATUREBANK_SPARK_LOG_FILE"
DEFAULT_LOG_LEVEL = "ERROR"  # a session built outside the CLI (a notebook, a job): errors only
KEEP_SPARK_LEVEL = "default"  # LOG_LEVEL_ENV value that leaves Spark's own level (`--verbose`)
JVM_LOG_TAIL = 15  # lines of the JVM's own output quoted when it fails to start

# Extra Maven packages a local session may need beside Delta (S3 through s3a://).
HADOOP_AWS_PACKAGE = "org.apache.hadoop:hadoop-aws:3.3.4"
# Delta's DynamoDB log store; its version follows delta-spark's (EMR 7 ships the jar in
# /usr/share/aws/delta/lib/, Glue 5.1 needs it through --extra-jars, notes/19-s3.md).
LOG_STORE_ARTIFACT = "io.delta:delta-storage-s3-dynamodb"
LOG_STORE_CLASS = "io.delta.storage.S3DynamoDBLogStore"


def log_store_package() -> str:
    """The Maven coordinate of the DynamoDB log store matching the installed delta-spark."""
    from importlib.metadata import version

    return f"{LOG_STORE_ARTIFACT}:{version('delta-spark')}"


def s3_write_conf(settings: AwsSettings | None) -> dict[str, str]:
    """The session settings that make every S3 write of an environment safe and encrypted.

    - SSE-KMS with `aws.kms_key_arn` through both S3 connectors: S3A (`s3a://`, the default
      on Glue 5.1 and here) and EMRFS (`s3://` on EMR; emrfs-site properties, which an EMR
      security configuration, when the cluster has one, overrides).
    - Delta's `S3DynamoDBLogStore` for `s3://` and `s3a://` when `aws.delta_log_table` is set:
      every group's run appends to the one `_runs` table, so serialising the runs of one group
      does not make concurrent drivers safe; the DynamoDB table does (mutual exclusion on
      `tablePath`/`fileName`, Delta's "multi-cluster setup").
    {} without `aws:`.
    """
    if settings is None:
        return {}
    conf: dict[str, str] = {}
    if settings.kms_key_arn:
        conf.update({
            "spark.hadoop.fs.s3a.encryption.algorithm": "SSE-KMS",
            "spark.hadoop.fs.s3a.encryption.key": settings.kms_key_arn,
            "spark.hadoop.fs.s3.enableServerSideEncryption": "true",
            "spark.hadoop.fs.s3.serverSideEncryption.kms.keyId": settings.kms_key_arn,
        })
    if settings.delta_log_table:
        conf.update({
            "spark.delta.logStore.s3.impl": LOG_STORE_CLASS,
            "spark.delta.logStore.s3a.impl": LOG_STORE_CLASS,
            f"spark.io.delta.storage.{LOG_STORE_CLASS.rsplit('.', 1)[1]}.ddb.tableName": settings.delta_log_table,
            f"spark.io.delta.storage.{LOG_STORE_CLASS.rsplit('.', 1)[1]}.ddb.region": settings.region,
        })
    return conf

LOCAL_DEFAULTS: dict[str, str] = {
    "spark.sql.shuffle.partitions": "8",
    "spark.default.parallelism": "4",
    "spark.driver.memory": "4g",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.sources.partitionOverwriteMode": "static",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    # Delta rebuilds a table's snapshot (log replay) as a job of this many tasks, 50 by default:
    # on a local session that job alone took 6.9 s of a daily run (issue 20); a local table's log
    # is small, two tasks (the cores) replay it.
    "spark.databricks.delta.snapshotPartitions": "2",
}

RUN_SIZE_ENV = "FEATUREBANK_RUN_SIZE"
SHORT, LONG = "short", "long"
SHORT_RUN_DATES = 3  # a run of at most this many snapshot dates is short (the daily run, a small catch-up)
LOOKUP_COMMANDS = frozenset({"preview", "explain", "describe", "list", "history"})
# C1 only: the JVM compiles hot code quickly and never spends CPU on C2's optimised code. Measured
# in issue 20: a short job 32 s -> 15 s, session start 9 s -> 5 s; on long compute it doubles CPU.
SHORT_JIT_OPTION = "-XX:TieredStopAtLevel=1"
# With C1 only, HotSpot shrinks its code cache from 240 MiB to 48 MiB, and when that is full it stops
# compiling for the rest of the process: every method not yet compiled runs in the interpreter. The
# bench's daily run alone filled 39 MiB of it, a second run in the same JVM filled it (notes/20-codecache.md),
# so a wider group's daily run would fall off that cliff. The short run keeps tiered's size.
SHORT_CODE_CACHE_OPTION = "-XX:ReservedCodeCacheSize=240m"
# A local master's one JVM collects with the throughput collector: a batch job has no pause to hide,
# and G1's write barriers and concurrent marking cost it CPU. Measured in issue 20 (notes/20-session17.md):
# the scale-1 backfill 167-179 s -> 156 s (the publish 50-54 s -> 40 s), a cold training set -8%, a daily
# run alike. A JVM refuses two collectors, so conf's or the environment's own choice is kept.
LOCAL_GC_OPTION = "-XX:+UseParallelGC"
_JAVA_ENVIRONMENT = ("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS")


def run_size(command: str, dates: int | None) -> str:
    """`short` or `long`: how big a command's Spark work is, decided before the JVM starts.

    Look-up commands (`LOOKUP_COMMANDS`) are short; `run` is short over at most `SHORT_RUN_DATES`
    snapshot dates (`dates`; None: not known before the run decides, e.g. `--restate` without
    dates, which is long). Everything else (training sets, vacuum, erase, backfills) is long.
    """
    if command in LOOKUP_COMMANDS:
        return SHORT
    if command == "run" and dates is not None and dates <= SHORT_RUN_DATES:
        return SHORT
    return LONG


def size_conf(conf: dict[str, str], size: str | None) -> dict[str, str]:
    """`conf` (a local session's settings, `spark.master` included) with a `short` run's JIT option.

    Only a `short` run on a local master gets `SHORT_JIT_OPTION` (with `SHORT_CODE_CACHE_OPTION`, the
    code cache tiered compilation would have), appended to the driver's java options (conf's own
    options kept): on a cluster the executors do the long work, and a backfill's compute would pay
    twice the CPU. Returns a new dict; `conf` is not changed.
    """
    if size != SHORT or not conf["spark.master"].startswith("local"):
        return dict(conf)
    return with_driver_options(conf, [SHORT_JIT_OPTION, SHORT_CODE_CACHE_OPTION])


def with_driver_options(conf: dict[str, str], options: list[str]) -> dict[str, str]:
    """`conf` with `options` appended to the driver's java options (those already there kept, none
    twice). Returns a new dict."""
    out = dict(conf)
    present = out.get("spark.driver.extraJavaOptions", "")
    added = [o for o in options if o not in present.split()]
    if added:
        out["spark.driver.extraJavaOptions"] = " ".join([present, *added]).strip()
    return out


def with_local_gc(conf: dict[str, str]) -> dict[str, str]:
    """`conf` (a local master's) with `LOCAL_GC_OPTION` for the driver, unless its java options or
    the JVM's environment (`JAVA_TOOL_OPTIONS` and the like) already choose a collector
    (`-XX:+Use...GC`). Returns a new dict."""
    import re

    chosen = [conf.get("spark.driver.extraJavaOptions", ""), *(os.environ.get(name, "") for name in _JAVA_ENVIRONMENT)]
    if any(re.search(r"-XX:\+Use\w*GC\b", options) for options in chosen):
        return dict(conf)
    return with_driver_options(conf, [LOCAL_GC_OPTION])


def detect_platform() -> str:
    """Where this process runs: `glue`, `emr`, `submit` (spark-submit) or `local`."""
    explicit = os.environ.get("FEATUREBANK_PLATFORM")
    if explicit:
        return explicit
    if os.environ.get("GLUE_VERSION") or os.environ.get("GLUE_COMMAND_CRITERIA"):
        return "glue"
    if os.path.exists("/emr/instance-controller") or os.environ.get("EMR_RELEASE_LABEL"):
        return "emr"
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        return "submit"
    return "local"


def session_conf(config: Config | None, platform: str, size: str | None = None) -> dict[str, str]:
    """The Spark settings a session gets on `platform`, before the builder applies them.

    `size` (`run_size`; default the `RUN_SIZE_ENV` the CLI set, else none: a long run's settings)
    adds a short run's settings to a local session (`size_conf`); a local master's JVM also gets
    the throughput collector (`with_local_gc`) and maps the class archive `make setup` wrote, when
    there is one (`io.class_archive`: a faster start).

    Only a `local` session takes `spark.master` from conf (else `FEATUREBANK_SPARK_MASTER`, else
    `local[*]`): everywhere else the launcher (spark-submit's `--master`, YARN on EMR, Glue) has
    already chosen the master, and a
    builder setting would override it, so `spark-submit --master spark://...` with a conf
    naming `local[*]` would quietly run on the driver alone.
    """
    conf: dict[str, str] = {}
    if platform == "local":
        conf.update(LOCAL_DEFAULTS)
    conf.update(DELTA_SQL_CONF)
    conf.update(READ_CONF)
    conf.update(EXECUTION_CONF)
    if config is not None:
        conf.update(dict(config.spark.conf))
        if platform != "local":
            conf.pop("spark.master", None)
        conf["spark.sql.session.timeZone"] = config.timezone
        conf.update(retention_conf(config.retention_days))
        conf.update(s3_write_conf(config.aws))
        if config.catalog_type == "glue" and platform in ("glue", "emr"):
            conf.setdefault(
                "spark.hadoop.hive.metastore.client.factory.class",
                "com.amazonaws.glue.catalog.metastore.AWSGlueDataCatalogHiveClientFactory",
            )
    conf.update(SEMANTICS_CONF)
    if platform == "local":
        conf.setdefault("spark.master", os.environ.get("FEATUREBANK_SPARK_MASTER", "local[*]"))
        conf = size_conf(conf, size or os.environ.get(RUN_SIZE_ENV))
        if conf["spark.master"].startswith("local"):  # our JVM: its collector, and the class archive
            from featurebank.io.class_archive import java_options

            conf = with_driver_options(with_local_gc(conf), java_options())
    return conf


def get_spark(
    config: Config | None = None,
    *,
    app_name: str = "featurebank",
    platform: str | None = None,
    extra_packages: tuple[str, ...] = (),
) -> SparkSession:
    """Return the active SparkSession with Delta enabled, or build one for this platform.

    A session someone already started (a notebook, a test fixture, spark-submit) is reused
    as it is, with only the project time zone applied. Raises nothing of its own; a missing
    Java or an unreachable Maven Central on the very first local start surfaces as Spark's
    error.
    """
    from pyspark.sql import SparkSession

    if config is not None and config.aws is not None:
        from featurebank.io.files import use_kms_key

        use_kms_key(config.aws.kms_key_arn)  # the files this process writes beside Spark's, same key
    active = SparkSession.getActiveSession()
    if active is not None:
        for key, value in {**READ_CONF, **SEMANTICS_CONF}.items():
            active.conf.set(key, value)
        if config is not None:
            active.conf.set("spark.sql.session.timeZone", config.timezone)
            for key, value in retention_conf(config.retention_days).items():
                active.conf.set(key, value)
        return active

    platform = platform or detect_platform()
    builder: Any = SparkSession.builder.appName(app_name)
    conf = session_conf(config, platform)
    for key, value in conf.items():
        builder = builder.config(key, value)
    if platform == "local":
        from delta import configure_spark_with_delta_pip

        packages = list(extra_packages)
        if config is not None and _uses_s3(config):
            packages.append(HADOOP_AWS_PACKAGE)
        if config is not None and config.aws is not None and config.aws.delta_log_table:
            packages.append(log_store_package())
        builder = configure_spark_with_delta_pip(builder, extra_packages=sorted(set(packages)))
    if platform == "glue" or config is not None and config.catalog_type in ("glue", "hive"):
        builder = builder.enableHiveSupport()
    if platform == "local":
        # Local Python workers run this interpreter, not whatever `python3` the PATH finds (Spark's
        # default): a 3.13 driver (the Spark 4 lane) with 3.11 workers fails PYTHON_VERSION_MISMATCH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        _launch_jvm_off_stdout(builder, os.environ.get(JVM_LOG_ENV) or None)
    spark = builder.getOrCreate()
    level = os.environ.get(LOG_LEVEL_ENV) or DEFAULT_LOG_LEVEL
    if level.lower() != KEEP_SPARK_LEVEL:
        spark.sparkContext.setLogLevel(level)
        _quiet_codegen_fallback(spark)
    if platform in ("submit", "emr"):
        ship_wheels_to_executors(spark)
    return spark


def _quiet_codegen_fallback(spark: SparkSession) -> None:
    """Silence Spark's report of a generated method over the JVM's 64 KB limit.

    A wide batch (many features in one projection) can generate a `processNext()` too large to
    compile; Spark then logs the compiler's error with a 300-line stack trace at ERROR and runs
    the same plan without whole-stage code generation (`spark.sql.codegen.fallback`, on by
    default): same values, no failure. That trace reads like a crash to a user. A compile failure
    Spark cannot fall back from still raises, and reaches the user as the run's error.
    """
    try:
        jvm = spark.sparkContext._jvm
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(  # type: ignore[union-attr]
            "org.apache.spark.sql.catalyst.expressions.codegen.CodeGenerator", jvm.org.apache.logging.log4j.Level.FATAL)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - logging only: a JVM without log4j 2 keeps Spark's level
        pass


def driver_memory(spark: SparkSession) -> tuple[int, int] | None:
    """The driver's heap (`Runtime.maxMemory`) and `spark.driver.maxResultSize` in bytes (0: no
    limit), as the driver's JVM reads them; None where this process has no JVM to ask (Spark
    Connect). What a plan that collects to the driver (a broadcast) may hold."""
    from pyspark.sql.utils import is_remote

    if is_remote():
        return None
    jvm = spark.sparkContext._jvm
    assert jvm is not None  # a classic session's driver
    heap = int(jvm.java.lang.Runtime.getRuntime().maxMemory())
    result = int(jvm.org.apache.spark.network.util.JavaUtils.byteStringAsBytes(
        spark.conf.get("spark.driver.maxResultSize", "1g")))
    return heap, result


# The settings `session_settings` holds, per (session, key): [value, holders, the value before]. A
# session's settings are shared by its threads (two publishes in one session, each in a thread of
# its own): the first holder saves and sets, the last restores, and a different value for a key held
# waits until its holders leave (an erasure's `userMetadata` must never label another commit).
_HELD_SETTINGS: dict[tuple[Any, str], list[Any]] = {}
_HELD_SETTINGS_CHANGED = threading.Condition()


@contextmanager
def session_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """`settings` on `spark`'s session for the duration of the block, each key then back to what it
    was (unset if it was unset): for what Spark reads from the session only (a Delta commit's
    `userMetadata` for a DELETE, the Parquet writer's settings, which Delta's write options drop).
    Safe across threads of one session (`_HELD_SETTINGS`); a block must not nest another that sets
    one of its keys to a different value (it would wait for itself)."""
    session = getattr(spark, "_jsparkSession", None) or id(spark)  # py4j: Java's equals/hashCode, one per JVM session
    held = {(session, key): value for key, value in settings.items()}

    def free() -> bool:
        return all(_HELD_SETTINGS.get(key, [value])[0] == value for key, value in held.items())

    with _HELD_SETTINGS_CHANGED:
        _HELD_SETTINGS_CHANGED.wait_for(free)
        for (_, key), value in held.items():
            entry = _HELD_SETTINGS.get((session, key))
            if entry is None:
                _HELD_SETTINGS[(session, key)] = [value, 1, spark.conf.get(key, None)]
                spark.conf.set(key, value)
            else:
                entry[1] += 1
    try:
        yield
    finally:
        with _HELD_SETTINGS_CHANGED:
            for (_, key) in held:
                entry = _HELD_SETTINGS[(session, key)]
                entry[1] -= 1
                if entry[1] == 0:
                    del _HELD_SETTINGS[(session, key)]
                    if entry[2] is None:
                        spark.conf.unset(key)
                    else:
                        spark.conf.set(key, entry[2])
            _HELD_SETTINGS_CHANGED.notify_all()


@contextmanager
def spark_output(*, verbose: bool = False, debug: bool = False, size: str | None = None) -> Iterator[SparkOutput]:
    """Where Spark's own output goes while a command runs, as the CLI and the demo want it.

    Quiet by default: Spark's log level OFF and a local JVM's own output (Ivy's report, log4j's
    start-up warnings) to a temporary file, removed on exit unless the caller sets `keep` (a
    runtime failure: the file is then evidence). `debug`: level ERROR, JVM output on stderr;
    `verbose`: Spark's own level, on stderr. `size` (`run_size`) goes to `RUN_SIZE_ENV` for the
    session built inside the block. Values already in the environment win (a caller who set them
    meant it). The environment is restored on exit.
    """
    import secrets
    import tempfile

    saved = {name: os.environ.get(name) for name in (LOG_LEVEL_ENV, JVM_LOG_ENV, RUN_SIZE_ENV)}
    if size is not None and not saved[RUN_SIZE_ENV]:
        os.environ[RUN_SIZE_ENV] = size
    os.environ[LOG_LEVEL_ENV] = saved[LOG_LEVEL_ENV] or (KEEP_SPARK_LEVEL if verbose else "ERROR" if debug else "OFF")
    output = SparkOutput()
    if not (verbose or debug or saved[JVM_LOG_ENV]):
        output.log_file = os.path.join(tempfile.gettempdir(),
                                       f"featurebank-spark-{os.getpid()}-{secrets.token_hex(4)}.log")
        os.environ[JVM_LOG_ENV] = output.log_file
    try:
        yield output
    finally:
        if output.log_file is not None and not output.keep and os.path.exists(output.log_file):
            os.remove(output.log_file)  # a JVM still running keeps writing to the unlinked file, harmlessly
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class SparkOutput:
    """The JVM's own output file of a `spark_output` block (None: it goes to stderr); set `keep`
    to leave the file in place."""

    log_file: str | None = None
    keep: bool = False


def _launch_jvm_off_stdout(builder: Any, log_file: str | None) -> None:
    """Start the local JVM (with the builder's conf) so that its output never reaches our stdout.

    Ivy prints `:: loading settings :: url = jar:...` to the JVM's stdout while it resolves
    Delta's jars, and the JVM inherits our stdout, which is for results only
    (`featurebank list --json | python -m json.tool`). Its stdout goes to our stderr, or both its
    stdout and stderr (Ivy's report, log4j's start-up warnings) to `log_file` when one is given.
    PySpark reuses a gateway already set on `SparkContext`, so `getOrCreate` then runs on this
    one. No-op when a JVM is already up. Raises `RuntimeFailure` quoting the end of `log_file`
    when the JVM does not start (no Java, Maven Central unreachable on the very first start).
    """
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:
        return
    conf = SparkConf()
    for key, value in builder._options.items():
        conf.set(key, str(value))
    if log_file is None:
        SparkContext._gateway = launch_gateway(conf, popen_kwargs={"stdout": 2})
    else:
        with open(log_file, "ab") as log:  # the JVM keeps its own copy of the descriptor
            try:
                SparkContext._gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
            except Exception as error:
                raise _jvm_failed(error, log_file) from None
    SparkContext._jvm = SparkContext._gateway.jvm


def _jvm_failed(error: Exception, log_file: str) -> Exception:
    """The sentence for a local JVM that did not start: its own last words, and where the rest is."""
    from featurebank.errors import RuntimeFailure

    try:
        with open(log_file, encoding="utf-8", errors="replace") as log:
            tail = [line.rstrip() for line in log.readlines()[-JVM_LOG_TAIL:] if line.strip()]
    except OSError:
        tail = []
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    said = "; it said:\n  " + "\n  ".join(tail) if tail else ""
    return RuntimeFailure(f"the local Spark JVM did not start ({reason}){said}\nits whole output is in {log_file}; "
                          "check that Java is installed (java -version) and, on the first start, that Maven Central "
                          "is reachable; rerun with --verbose to see Spark's output as it comes")


def ship_wheels_to_executors(spark: SparkSession) -> list[str]:
    """Make every wheel given to `spark-submit --py-files` importable on the executors too.

    spark-submit puts each `--py-files` entry on the driver's PYTHONPATH, but PySpark adds only
    `.zip`/`.egg`/`.jar` entries to the executors' Python path (`SparkContext.PACKAGE_EXTENSIONS`),
    so the featurebank wheel is silently missing on standalone (and Kubernetes) executors;
    YARN happens to export it through PYTHONPATH. A wheel is a zip: ship a copy named `.zip`.
    Returns the copies shipped (none when no wheel was given). Found by tests/test_cluster.py.
    """
    import re
    import shutil
    import tempfile

    from pyspark import SparkFiles

    context = spark.sparkContext
    shipped = []
    for entry in context.getConf().get("spark.submit.pyFiles", "").split(","):
        name = os.path.basename(entry)
        fetched = os.path.join(SparkFiles.getRootDirectory(), name)  # where PySpark put it for the driver
        if not name.lower().endswith(".whl") or not os.path.isfile(fetched):
            continue
        copy = os.path.join(tempfile.mkdtemp(prefix="featurebank-pyfiles-"),
                            re.sub(r"[^A-Za-z0-9._-]", "_", name[: -len(".whl")]) + ".zip")
        shutil.copyfile(fetched, copy)
        context.addPyFile(copy)
        shipped.append(copy)
    return shipped


def _uses_s3(config: Config) -> bool:
    """True when the feature root or any variable (e.g. raw_root) points at S3."""
    values = [config.feature_root, *(str(v) for _, v in config.variables)]
    return any(v.startswith(("s3://", "s3a://")) for v in values)
