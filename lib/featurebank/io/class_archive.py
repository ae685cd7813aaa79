"""A class-data-sharing archive of the classes a local Spark session loads: the JVM starts faster.

A local command's JVM loads and verifies some twenty thousand classes from Spark's jars before
it runs anything. Java 17 can map them, already parsed and verified, from an archive written
by an earlier JVM (`-XX:ArchiveClassesAtExit`, then `-XX:SharedArchiveFile`): measured on the
bench's 2-core machine, a session's start fell from 6.8-7.6 s to 3.9-5.0 s (issue 20,
notes/20-training.md). Only local sessions use it: on EMR, Glue or spark-submit the JVM is not ours to start.

`make setup` writes the archive once (`python -m featurebank.io.class_archive`) into the
virtualenv (`default_path`), beside the jars it was made from; `FEATUREBANK_JVM_ARCHIVE` names
another file, or turns it off (`off`). A JVM dies at start on a truncated archive, so the archive
is written under a temporary name, proved by starting a second session on it, and only then
renamed into place with its size beside it (`<archive>.size`); a session uses an archive only
when its size is the one recorded. An archive made from other jars (pyspark upgraded, another
JDK) is not fatal: the JVM ignores it and starts as it would without.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ARCHIVE_ENV = "FEATUREBANK_JVM_ARCHIVE"  # a path, or `off`; unset: `default_path()`
OFF = "off"
MODULE = "featurebank.io.class_archive"
# The JVM's own CDS messages (an archive made from other jars) go nowhere: the start goes on without it.
QUIET = ("-Xlog:cds=off", "-Xlog:cds+dynamic=off")


def default_path() -> Path:
    """Where `make setup` writes the archive: in this Python environment, beside pyspark's jars."""
    return Path(sys.prefix) / "share" / "featurebank" / "spark-classes.jsa"


def chosen_path() -> Path | None:
    """The archive's file as the environment chooses it: `ARCHIVE_ENV`'s path, `default_path()`
    when unset, None when `off`."""
    chosen = os.environ.get(ARCHIVE_ENV, "").strip()
    if chosen.lower() == OFF:
        return None
    return Path(chosen) if chosen else default_path()


def archive_path() -> Path | None:
    """The archive a local session should be given, or None (off, absent, or not the size recorded)."""
    path = chosen_path()
    if path is None:
        return None
    try:
        recorded = int(_size_file(path).read_text().strip())
        return path if path.stat().st_size == recorded else None
    except (OSError, ValueError):
        return None


def java_options() -> list[str]:
    """The driver's java options that map the archive (`archive_path`), or [] without one."""
    path = archive_path()
    return [f"-XX:SharedArchiveFile={path}", *QUIET] if path is not None else []


def _size_file(path: Path) -> Path:
    return path.with_name(path.name + ".size")


def _warm_up() -> None:
    """The work whose classes the archive keeps: a session, Delta written and read, the kinds of
    plan featurebank runs (aggregate, window, joins, Parquet). Runs in the JVM that dumps."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from featurebank.io.spark import get_spark

    spark = get_spark(None, app_name="featurebank-class-archive", platform="local")
    with tempfile.TemporaryDirectory(prefix="featurebank-class-archive-") as work:
        rows = spark.range(2000).select(
            (F.col("id") % 50).cast("string").alias("k"),
            F.date_add(F.lit("2024-01-01").cast("date"), (F.col("id") % 30).cast("int")).alias("d"),
            (F.col("id") / 7).cast("decimal(18,2)").alias("v"))
        rows.write.format("delta").partitionBy("d").save(f"{work}/t")
        table = spark.read.format("delta").load(f"{work}/t")
        daily = table.groupBy("k", "d").agg(F.sum("v").alias("s"), F.count("*").alias("n"),
                                            F.countDistinct("v").alias("u"))
        window = Window.partitionBy("k").orderBy("d").rowsBetween(-6, 0)
        ranked = daily.withColumn("s7", F.sum("s").over(window)).withColumn("m7", F.max("n").over(window))
        joined = ranked.join(F.broadcast(table.select("k", "d").distinct()), ["k", "d"], "left")
        joined.join(ranked.select("k", "d"), ["k", "d"], "left_semi").write.parquet(f"{work}/p")
        spark.read.parquet(f"{work}/p").count()
        spark.stop()


def _stop_jvm() -> None:
    """End this process's JVM and wait until it has written its archive (it dumps on exit)."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    process = gateway.proc
    gateway.shutdown()
    SparkContext._gateway = None
    if process.stdin is not None:
        process.stdin.close()  # the JVM exits when its stdin closes (PythonGatewayServer)
    process.wait(timeout=600)


def create(path: Path) -> bool:
    """Write the archive to `path` (see the module's text); True when one is in place. Prints
    what happened on stderr; never raises for a failed attempt (the archive only saves time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    env = {**os.environ, ARCHIVE_ENV: OFF,
           "JAVA_TOOL_OPTIONS": f"{os.environ.get('JAVA_TOOL_OPTIONS', '')} "
                                f"-XX:ArchiveClassesAtExit={temporary} {' '.join(QUIET)}".strip()}
    try:
        made = subprocess.run([sys.executable, "-m", MODULE, "--warm-up"], env=env, capture_output=True,
                              text=True, timeout=900)
        if made.returncode != 0 or not temporary.is_file():
            print(f"featurebank: no JVM class archive written to {path} (the warm-up session failed: "
                  f"{(made.stderr.strip().splitlines() or ['no output'])[-1]}); local sessions start without one",
                  file=sys.stderr)
            return False
        _size_file(temporary).write_text(str(temporary.stat().st_size))  # first: the proof's session maps it
        proof = subprocess.run([sys.executable, "-m", MODULE, "--prove"], capture_output=True, text=True,
                               timeout=900, env={**os.environ, ARCHIVE_ENV: str(temporary)})
        if proof.returncode != 0:
            print(f"featurebank: the JVM class archive {temporary} did not start a session (exit "
                  f"{proof.returncode}); local sessions start without one", file=sys.stderr)
            return False
        os.replace(temporary, path)  # the size file goes last: until then no session uses the archive
        _size_file(temporary).replace(_size_file(path))
        print(f"featurebank: JVM class archive written to {path} ({path.stat().st_size // 2**20} MiB)",
              file=sys.stderr)
        return True
    finally:
        for leftover in (temporary, _size_file(temporary)):
            leftover.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    if argv == ["--warm-up"]:
        _warm_up()
        _stop_jvm()
        return 0
    if argv == ["--prove"]:  # a session that maps the archive under test starts, runs and stops
        from featurebank.io.spark import get_spark

        spark = get_spark(None, platform="local")
        options = spark.conf.get("spark.driver.extraJavaOptions", "") or ""
        mapped = f"-XX:SharedArchiveFile={chosen_path()}" in options.split()
        return 0 if mapped and spark.range(10).count() == 10 else 1
    path = chosen_path()
    if path is not None:
        create(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
