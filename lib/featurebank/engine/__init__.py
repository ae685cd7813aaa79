"""The Spark executor: the source's events and a compiled `Plan` in, the group's batch DataFrame out.

`compute_batch` = `compute_aggregation` (daily snapshots) or `compute_rows` (row-level),
which apply the group's filter, compute the features and derived features, and return
exactly `plan.output`'s columns in order. The events come from the I/O edge
(`io.sources.read_source`: checked types, time columns as instants, event-time range pushed
into the scan). Nothing here reads or writes storage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from featurebank.compile.run import Plan


def compute_batch(events: DataFrame, plan: Plan) -> DataFrame:
    """The rows SPEC says `plan.group`'s table holds for `plan.start..plan.end` (lazy).

    `events` is `plan.source` as `io.sources.read_source(spark, plan.source, plan.timezone)`
    returns it (that read does not depend on the session time zone). Sets the session time
    zone to `plan.timezone` first, so that time functions inside user expressions (filter,
    features, derived) see project-local time, as SPEC requires.
    Raises `SourceMismatch` if the source no longer matches its definition (an aggregation's
    input type included), `DefinitionError` if Spark's reading of an expression breaks the
    expression policy (`engine.policy`); both before anything is computed.
    """
    from featurebank.engine.aggregate import compute_aggregation
    from featurebank.engine.policy import check_batch, check_input_types
    from featurebank.engine.rows import compute_rows

    events.sparkSession.conf.set("spark.sql.session.timeZone", plan.timezone)
    check_input_types(events, plan)
    batch = compute_aggregation(events, plan) if plan.kind == "aggregation" else compute_rows(events, plan)
    check_batch(batch, events, plan)
    return batch
