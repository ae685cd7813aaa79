"""What the tests that launch Spark in a process of its own (`spark-submit`, the `featurebank`
CLI) share: where the venv's commands are, the Delta package `--packages` resolves, and the
environment such a child process gets.

Used by `test_deploy_spark.py` (local-mode spark-submit, as the EMR step runs it) and
`test_cluster.py` (spark-submit to a real standalone cluster, see `cluster.py`).
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
SPARK_SUBMIT = BIN / "spark-submit"
# The Delta jars matching the installed delta-spark (Scala 2.12, as Spark 3.5 from PyPI);
# resolved by Spark from Maven Central into ~/.ivy2 once, from the cache afterwards.
DELTA_PACKAGE = f"io.delta:delta-spark_2.12:{importlib.metadata.version('delta-spark')}"


def subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child Spark process: the venv's Python on both sides,
    one local core when the session builder picks the master, no link to a parent's JVM."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "FEATUREBANK_SPARK_MASTER": "local[1]", **extra}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    return env
