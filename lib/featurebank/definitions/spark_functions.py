"""The names of Spark SQL's built-in functions, so `validate` can flag a misspelt one.

Read from a static list, `spark_functions.json` (no JVM at validate time), written from
`SHOW FUNCTIONS` of the pinned Spark by `write_catalogue(spark)`; a test checks it is current.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

CATALOGUE = Path(__file__).with_name("spark_functions.json")


@lru_cache(maxsize=1)
def spark_functions() -> frozenset[str]:
    """Every built-in Spark SQL function name (lower case)."""
    raw: dict[str, Any] = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    return frozenset(raw["functions"])


def generate(spark: SparkSession) -> dict[str, Any]:
    """The catalogue as a running SparkSession reports it (`SHOW FUNCTIONS`, operators left out)."""
    names = sorted({row[0] for row in spark.sql("SHOW FUNCTIONS").collect()})
    return {"spark": str(spark.version), "functions": [n for n in names if n[0].isalpha() or n[0] == "_"]}


def write_catalogue(spark: SparkSession) -> None:
    """Rewrite `spark_functions.json` from a running SparkSession."""
    CATALOGUE.write_text(json.dumps(generate(spark), indent=0) + "\n", encoding="utf-8")
