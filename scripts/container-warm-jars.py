"""Image build step: fill the image's Ivy directory with Delta's (and extra) jars.

    python container-warm-jars.py [MAVEN_COORDINATE ...]    # e.g. org.apache.hadoop:hadoop-aws:3.3.4

Starts one local Spark session the way `featurebank.io.spark.get_spark` does locally
(`configure_spark_with_delta_pip`, which asks for the delta-spark jars matching the installed
pip package, plus the given coordinates), so Spark resolves them from Maven Central into
`spark.jars.ivy` (the image sets /opt/ivy2 in spark-defaults.conf). Then it writes and reads
back a three-row Delta table, so a broken Java, Spark or Delta fails the build, not the
first run. Every later start finds the jars in that directory and needs no network.
"""

from __future__ import annotations

import sys
import tempfile


def main(packages: list[str]) -> int:
    """Resolve the jars by starting Spark once; return 0 when a Delta round trip works."""
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master("local[1]")
        .appName("featurebank-image-warm-jars")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
    )
    spark = configure_spark_with_delta_pip(builder, extra_packages=packages).getOrCreate()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            spark.range(3).write.format("delta").save(scratch + "/t")
            rows = spark.read.format("delta").load(scratch + "/t").count()
        print(f"Delta round trip: {rows} rows; jars: {spark.conf.get('spark.jars.packages')}")
        return 0 if rows == 3 else 1
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
