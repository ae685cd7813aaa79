"""Shared fixtures: one real SparkSession with Delta for the whole test session.

Small data, two cores, few shuffle partitions. Nothing here mocks Spark, Delta or GX.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # tests/oracles is importable as `oracles`

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def spark():
    """The one SparkSession (local[2], Delta, UTC) every Spark test shares."""
    from featurebank.io.spark import get_spark

    os.environ["FEATUREBANK_SPARK_MASTER"] = "local[2]"
    session = get_spark(None, app_name="featurebank-tests", platform="local")
    session.conf.set("spark.sql.shuffle.partitions", "2")
    session.conf.set("spark.sql.session.timeZone", "UTC")
    yield session
    session.stop()


@pytest.fixture()
def example_project(tmp_path: Path) -> Path:
    """A private copy of the shipped example project (features/ and conf/) to write into."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "features", root / "features")
    shutil.copytree(REPO / "conf", root / "conf")
    return root
