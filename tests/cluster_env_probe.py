"""A job `test_cluster.py` submits to the standalone cluster with the packed environment: where
do the driver and every executor import featurebank's dependencies from? Prints one line,
`PROBE {json}`.

Each task (one per partition, spread over every executor) imports each module of MODULES in
an executor's Python worker and reports its file, the interpreter, `sys.prefix`, its process
and the executor's working directory; an ImportError is reported, not raised, so the test
can say which module could not be imported where.
"""

import json
import os
import sys

MODULES = ("featurebank", "yaml", "sqlglot", "great_expectations", "numpy", "pyarrow")


def where(_index):
    import importlib

    found = {}
    for name in MODULES:
        try:
            found[name] = importlib.import_module(name).__file__
        except ImportError as error:
            found[name] = f"ImportError: {error}"
    return {"modules": found, "executable": sys.executable, "prefix": sys.prefix, "pid": os.getpid(),
            "cwd": os.getcwd()}


if __name__ == "__main__":
    from featurebank.io.spark import get_spark

    spark = get_spark(None, app_name="featurebank-cluster-environment-probe")  # the session every job gets
    driver = where(-1)
    partitions = 2 * max(2, spark.sparkContext.defaultParallelism)
    executors = spark.sparkContext.parallelize(range(partitions), partitions).map(where).collect()
    print("PROBE " + json.dumps({"master": spark.sparkContext.master, "driver": driver, "executors": executors}))
    spark.stop()
