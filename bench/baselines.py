"""The baselines featurebank is measured against, computing exactly the bench group's values.

- `per_date_snapshot` / `per_date_backfill`: the daily PySpark job users hand-write today: for
  each snapshot date D read the events, keep `[D - 90 days, D)`, group by customer, compute
  the 15 conditional aggregates and replace D's partition of a Delta table.
- `duckdb_backfill`: DuckDB on the same cores, written the way one would write it to be fast
  (the single-node hardware bar): one pass to daily tiles per (customer, day), a dense
  per-customer day grid, running totals minus the total N days earlier for sums and counts,
  a bounded frame of daily maxima for max, and a +1/-1 difference array for exact distinct
  counts. No sliding re-aggregation over raw events.
- `naive_training_set`: the Feast-style point-in-time join (join on key with
  `feature_ts <= ts`, `row_number()` per spine row by `feature_ts desc`, keep 1).
- `duckdb_training_set`: DuckDB's `ASOF LEFT JOIN`.

All of them implement SPEC's meaning (aggregation snapshot D covers events in `[D - w, D)`,
days cut at midnight UTC; a row exists when the customer has a filtered event in the 90 days;
empty windows give 0 for counts and NULL otherwise), so their outputs can be compared value
by value with featurebank's.
"""

from __future__ import annotations

import shutil
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

GROUP = "customer_card_spend_bench"
KEYS = ("customer_id",)
WINDOWS = (7, 30, 90)
FILTER = "status = 'SETTLED'"
# (name, function, expr) in the group's definition order; output `<name>_<w>d` per window.
AGGREGATES = (
    ("spend_sum", "sum", "amount"),
    ("txn_count", "count", None),
    ("spend_avg", "avg", "amount"),
    ("spend_max", "max", "amount"),
    ("merchants", "count_distinct", "merchant_id"),
)
FEATURES = tuple(f"{name}_{w}d" for name, _, _ in AGGREGATES for w in WINDOWS)
COUNT_FEATURES = tuple(f for f in FEATURES if f.startswith(("txn_count", "merchants")))
MAX_WINDOW = max(WINDOWS)


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


# --- (a) the hand-written per-date PySpark job ---------------------------------------------

def per_date_snapshot(events: DataFrame, snapshot: date) -> DataFrame:
    """One snapshot date's rows, as users write it: filter the 90 days, one groupBy, the 15
    aggregates as conditional aggregates (`count(distinct case when ...)` for distinct)."""
    from pyspark.sql import functions as F

    window_start = {w: F.lit(_midnight(snapshot - timedelta(days=w))) for w in WINDOWS}
    window_end_exclusive = F.lit(_midnight(snapshot))
    rows = events.where(F.expr(FILTER)).where(
        (F.col("event_ts") >= window_start[MAX_WINDOW]) & (F.col("event_ts") < window_end_exclusive)
    )
    aggs = []
    for name, function, expr in AGGREGATES:
        for w in WINDOWS:
            inside = F.col("event_ts") >= window_start[w]
            value = F.when(inside, F.col(expr) if expr else F.lit(1))
            out = f"{name}_{w}d"
            if function == "sum":
                aggs.append(F.sum(value).alias(out))
            elif function == "count":
                aggs.append(F.count(value).alias(out))
            elif function == "avg":
                aggs.append(F.avg(value).alias(out))
            elif function == "max":
                aggs.append(F.max(value).alias(out))
            else:
                aggs.append(F.countDistinct(value).alias(out))
    return (
        rows.groupBy(*KEYS)
        .agg(*aggs)
        .select(
            *KEYS,
            F.lit(snapshot).alias("feature_date"),
            F.lit(_midnight(snapshot)).cast("timestamp").alias("feature_ts"),
            *FEATURES,
        )
    )


def per_date_backfill(spark: SparkSession, events_path: str, dates: list[date], out_path: str) -> list[float]:
    """Run the per-date job for each of `dates` (one Delta commit per date, replacing that
    date's partition); return the seconds each date took."""
    from delta.tables import DeltaTable

    seconds = []
    for snapshot in dates:
        started = time.perf_counter()
        events = spark.read.parquet(events_path)
        batch = per_date_snapshot(events, snapshot)
        writer = batch.write.format("delta").partitionBy("feature_date")
        if DeltaTable.isDeltaTable(spark, out_path):
            writer = writer.mode("overwrite").option("replaceWhere", f"feature_date = '{snapshot}'")
        else:
            writer = writer.mode("overwrite")
        writer.save(out_path)
        seconds.append(time.perf_counter() - started)
    return seconds


# --- (b) DuckDB, written well ---------------------------------------------------------------

def duckdb_backfill_sql(events_glob: str, start: date, end: date) -> str:
    """The DuckDB query for snapshot dates start..end (inclusive); days are integer epoch days."""
    first, last = (start - date(1970, 1, 1)).days, (end - date(1970, 1, 1)).days
    lo = first - MAX_WINDOW  # first event day any snapshot reads
    maxima = ", ".join(
        f"max(m) OVER (o ROWS BETWEEN {w} PRECEDING AND 1 PRECEDING) AS m{w}, sum(dd{w}) OVER (o ROWS UNBOUNDED PRECEDING) AS d{w}"
        for w in WINDOWS
    )
    # events in [D - w, D) = running total through D-1 minus running total through D-1-w
    windowed = ",\n      ".join(
        f"coalesce(lag({c}, 1) OVER o, 0) - coalesce(lag({c}, {w + 1}) OVER o, 0) AS {c[1]}{w}"
        for w in WINDOWS for c in ("cn", "cs")
    )
    # a distinct merchant seen on day d counts for D in [d+1, min(d+w, next occurrence)]
    deltas = "\n      UNION ALL ".join(
        f"SELECT customer_id, day + 1 AS day, {', '.join('1' if v == w else '0' for v in WINDOWS)} FROM occ "
        f"UNION ALL SELECT customer_id, least(day + {w}, coalesce(next_day, day + {w})) + 1, "
        f"{', '.join('-1' if v == w else '0' for v in WINDOWS)} FROM occ"
        for w in WINDOWS
    )
    features = ",\n    ".join(
        [f"CASE WHEN n{w} > 0 THEN s{w} END AS spend_sum_{w}d" for w in WINDOWS]
        + [f"n{w}::BIGINT AS txn_count_{w}d" for w in WINDOWS]
        + [f"CASE WHEN n{w} > 0 THEN s{w} / n{w} END AS spend_avg_{w}d" for w in WINDOWS]
        + [f"m{w} AS spend_max_{w}d" for w in WINDOWS]
        + [f"d{w}::BIGINT AS merchants_{w}d" for w in WINDOWS]
    )
    return f"""
WITH ev AS (
  SELECT customer_id, merchant_id, amount, (epoch_us(event_ts) // {86_400_000_000})::INTEGER AS day
  FROM read_parquet('{events_glob}')
  WHERE {FILTER}
    AND event_ts >= TIMESTAMPTZ '{date.fromordinal(date(1970, 1, 1).toordinal() + lo)} 00:00:00+00'
    AND event_ts < TIMESTAMPTZ '{end} 00:00:00+00'
),
tiles AS (
  SELECT customer_id, day, count(*)::DOUBLE AS n, sum(amount) AS s, max(amount) AS m FROM ev GROUP BY ALL
),
occ AS (
  SELECT customer_id, day, lead(day) OVER (PARTITION BY customer_id, merchant_id ORDER BY day) AS next_day
  FROM (SELECT DISTINCT customer_id, merchant_id, day FROM ev)
),
deltas AS (
  SELECT customer_id, day, sum(a)::DOUBLE AS dd7, sum(b)::DOUBLE AS dd30, sum(c)::DOUBLE AS dd90
  FROM ({deltas}) AS t(customer_id, day, a, b, c)
  GROUP BY ALL
),
grid AS (
  SELECT c.customer_id, g.day::INTEGER AS day
  FROM (SELECT DISTINCT customer_id FROM tiles) c, range({lo}, {last + 1}) g(day)
),
dense AS (
  SELECT grid.customer_id, grid.day, coalesce(t.n, 0) AS n, coalesce(t.s, 0) AS s, t.m,
         coalesce(dd7, 0) AS dd7, coalesce(dd30, 0) AS dd30, coalesce(dd90, 0) AS dd90
  FROM grid
  LEFT JOIN tiles t USING (customer_id, day)
  LEFT JOIN deltas d USING (customer_id, day)
),
running AS (
  SELECT customer_id, day, sum(n) OVER (o ROWS UNBOUNDED PRECEDING) AS cn,
         sum(s) OVER (o ROWS UNBOUNDED PRECEDING) AS cs, {maxima}
  FROM dense
  WINDOW o AS (PARTITION BY customer_id ORDER BY day)
),
windows AS (
  SELECT *, {windowed}
  FROM running
  WINDOW o AS (PARTITION BY customer_id ORDER BY day)
)
SELECT customer_id,
    DATE '1970-01-01' + day AS feature_date,
    (DATE '1970-01-01' + day)::TIMESTAMP AS feature_ts,
    {features}
FROM windows
WHERE day BETWEEN {first} AND {last} AND n{MAX_WINDOW} > 0
"""


def duckdb_backfill(events_path: str, start: date, end: date, out_dir: str, threads: int = 2,
                    memory_limit: str = "8GB") -> int:
    """Compute snapshot dates start..end with DuckDB and write Parquet partitioned by
    feature_date under `out_dir` (replaced); return the number of rows written."""
    import duckdb

    if Path(out_dir).exists():
        shutil.rmtree(out_dir)
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    con.execute(f"SET memory_limit='{memory_limit}'")
    con.execute("SET TimeZone='UTC'")
    con.execute("SET preserve_insertion_order=false")
    sql = duckdb_backfill_sql(f"{events_path}/*.parquet", start, end)
    con.execute(f"CREATE TEMP TABLE result AS {sql}")
    rows = con.execute("SELECT count(*) FROM result").fetchone()[0]  # type: ignore[index]
    con.execute(f"COPY result TO '{out_dir}' (FORMAT parquet, PARTITION_BY (feature_date))")
    con.close()
    return int(rows)


# --- training sets --------------------------------------------------------------------------

def naive_training_set(spark: SparkSession, spine_path: str, table_path: str, out_path: str) -> int:
    """Join-then-rank: spine ⋈ features on key with feature_ts <= ts, keep the latest per
    spine row (`row_number() over (partition by spine row order by feature_ts desc)`).
    Writes Parquet to `out_path`; returns the row count."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spine = spark.read.parquet(spine_path)
    features = spark.read.format("delta").load(table_path).drop("feature_date")
    joined = spine.join(
        features.withColumnRenamed("customer_id", "_fk"),
        (spine.customer_id == F.col("_fk")) & (F.col("feature_ts") <= spine.ts),
        "left",
    )
    latest = Window.partitionBy("row_id").orderBy(F.col("feature_ts").desc())
    result = (
        joined.withColumn("_rn", F.row_number().over(latest))
        .where("_rn = 1")
        .select(*spine.columns, "feature_ts", *FEATURES)
    )
    result.write.mode("overwrite").parquet(out_path)
    return spark.read.parquet(out_path).count()


def delta_parquet_files(table_path: str) -> list[str]:
    """The Parquet files of a Delta table's current version (read with delta-rs, no Spark)."""
    from deltalake import DeltaTable

    return [u.removeprefix("file://") for u in DeltaTable(table_path).file_uris()]


def duckdb_training_set(spine_path: str, table_path: str, out_path: str, threads: int = 2,
                        memory_limit: str = "8GB") -> int:
    """DuckDB ASOF LEFT JOIN of the spine against the published Delta table (the latest
    feature row with feature_ts <= ts per spine row). Writes Parquet; returns the row count."""
    import duckdb

    files = delta_parquet_files(table_path)
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    con.execute(f"SET memory_limit='{memory_limit}'")
    con.execute("SET TimeZone='UTC'")
    file_list = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    select = ", ".join(f"f.{c}" for c in FEATURES)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"""
        COPY (
          SELECT s.*, f.feature_ts, {select}
          FROM read_parquet('{spine_path}') s
          ASOF LEFT JOIN read_parquet({file_list}, hive_partitioning = true) f
            ON s.customer_id = f.customer_id AND s.ts >= f.feature_ts
        ) TO '{out_path}' (FORMAT parquet)
    """)
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out_path}')").fetchone()[0]  # type: ignore[index]
    con.close()
    return int(rows)
