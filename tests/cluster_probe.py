"""A job `test_cluster.py` submits to the standalone cluster: where do the driver and the
executors import `featurebank` from, with the session featurebank's jobs build? Prints one
line, `PROBE {json}`.

Each task imports featurebank in an executor's Python worker and reports the file it came
from, its process and the executor's working directory; an ImportError is reported, not
raised, so the test can say which side could not import it.
"""

import json
import os


def where(_index):
    try:
        import featurebank

        found = featurebank.__file__
    except ImportError as error:
        found = f"ImportError: {error}"
    return {"file": found, "pid": os.getpid(), "cwd": os.getcwd()}


if __name__ == "__main__":
    import featurebank
    from featurebank.io.spark import get_spark

    spark = get_spark(None, app_name="featurebank-cluster-probe")  # the session every job gets

    executors = spark.sparkContext.parallelize(range(4), 4).map(where).collect()
    print("PROBE " + json.dumps({"master": spark.sparkContext.master, "driver": featurebank.__file__,
                                 "executors": executors}))
    spark.stop()
