"""Row-level groups: one feature row per filtered source row.

SPEC: entity keys, `feature_ts` = the source timestamp, `feature_date` = the date of
`feature_ts` in the project time zone (the partition column), then each feature, a Spark SQL
expression over the source row's columns. Only rows whose `feature_date` lies in the run's
dates `start..end` are kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurebank.compile.run import Plan
from featurebank.days import day_date, epoch_day, local_epoch_day
from featurebank.engine.aggregate import output_names

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def compute_rows(rows: DataFrame, plan: Plan) -> DataFrame:
    """The batch of a row-level group for dates `plan.start..plan.end`.

    `rows` are source rows as `read_source` returns them (timestamp as TIMESTAMP);
    `plan.filter` is applied here. Every feature is evaluated over the source columns (a
    feature may reuse a source column's name). Returns `plan.output`'s columns in order.
    """
    from pyspark.sql import functions as F

    ts_name = plan.source.timestamp
    if not ts_name:
        raise ValueError(f"row-level group {plan.group!r} needs a source timestamp")
    ts = F.col(f"`{ts_name}`")
    if plan.filter:
        rows = rows.filter(F.expr(plan.filter))
    day = local_epoch_day(ts, plan.timezone)
    rows = rows.filter(ts.isNotNull() & (day >= epoch_day(plan.start)) & (day <= epoch_day(plan.end)))
    out = rows.select(
        *[F.col(f"`{k}`") for k in plan.keys],
        day_date(day).alias("feature_date"),
        ts.alias("feature_ts"),
        *[F.expr(f.expr).alias(f.name) for f in plan.features],
    )
    return out.select(*[F.col(f"`{c}`") for c in output_names(plan)])
