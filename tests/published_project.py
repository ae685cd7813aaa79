"""One published example project for the whole test session (`published`): tiny generated data,
every group run (one twice), a training set built. Shared by test_docs_site.py and
test_lookups.py, which import the fixture; session-scoped so Spark publishes it once.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta, timezone

import pytest

from featurebank.definitions import load_project
from featurebank.runner import run_group
from featurebank_demo.datagen import DatagenParams, generate

TINY = DatagenParams(customers=30, merchants=20, days=20, end_date=date(2024, 3, 20), seed=3)
RUN_DATES = (date(2024, 3, 18), date(2024, 3, 20))
NOW = datetime(2024, 3, 22, 9, 0, tzinfo=timezone.utc)  # freshness: 2 days behind for aggregation groups


@pytest.fixture(scope="session")
def published(spark, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    """The loaded project (env local) of a copy with tiny data, every group published over
    RUN_DATES (row groups from the data's start), customer_card_spend a second time on the last
    date, and training set card_fraud_v1 written to warehouse/training/card_fraud_v1."""
    from conftest import REPO
    from pyspark.sql import functions as F

    from featurebank.training.api import FeatureStore

    root = tmp_path_factory.mktemp("published") / "project"
    shutil.copytree(REPO / "features", root / "features")
    shutil.copytree(REPO / "conf", root / "conf")
    generate(root / "warehouse" / "raw", TINY)
    project = load_project(root, "local")
    for name, group in sorted(project.groups.items()):
        start = RUN_DATES[0] if group.kind == "aggregation" else TINY.start_date
        run_group(project, name, start, RUN_DATES[1], spark=spark)
    run_group(project, "customer_card_spend", RUN_DATES[1], RUN_DATES[1], spark=spark)  # a second run
    spine = (spark.read.parquet(str(root / "warehouse" / "raw" / "card_fraud_labels"))
             .where(F.col("ts") >= F.lit(RUN_DATES[0].isoformat()).cast("timestamp"))
             .where(F.col("ts") < F.lit((RUN_DATES[1] + timedelta(days=1)).isoformat()).cast("timestamp")))
    FeatureStore(project, spark=spark).write_training_set(
        "card_fraud_v1", spine=spine, out=str(root / "warehouse" / "training" / "card_fraud_v1"))
    return project
