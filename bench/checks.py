"""Before any timing counts: do featurebank and the baselines produce the same values?

Read with delta-rs and DuckDB (no Spark, so the check is independent of the engine under
test). Counts and distinct counts must match exactly; sums, averages and maxima within
`ABS_TOL + REL_TOL * |value|` (summation order differs between engines); NULLs must match
NULLs. Rows must match by key: a row present on one side only is a disagreement.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from bench.baselines import COUNT_FEATURES, FEATURES

ABS_TOL = 1e-6
REL_TOL = 1e-9


def _connect() -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads=2")
    con.execute("SET TimeZone='UTC'")
    con.execute("SET enable_progress_bar=false")
    return con


def _delta_dates(path: str, dates: list[date]) -> Any:
    """The rows of a Delta table's current version with feature_date in `dates` (Arrow)."""
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    dataset = DeltaTable(path).to_pyarrow_dataset()
    return dataset.to_table(filter=ds.field("feature_date").isin(dates))


def _same(column: str, left: str = "a", right: str = "b") -> str:
    """SQL: the two sides agree on `column` (NULL = NULL; floats within tolerance)."""
    l, r = f"{left}.{column}", f"{right}.{column}"
    if column in COUNT_FEATURES:
        return f"({l} IS NOT DISTINCT FROM {r})"
    return (f"(({l} IS NULL AND {r} IS NULL) OR "
            f"abs({l} - {r}) <= {ABS_TOL} + {REL_TOL} * greatest(abs({l}), abs({r})))")


def _compare(con: Any, left: str, right: str, keys: tuple[str, ...], columns: tuple[str, ...],
             where: str = "TRUE") -> dict[str, Any]:
    on = " AND ".join(f"a.{k} = b.{k}" for k in keys)
    only = ", ".join(
        [f"count(*) FILTER (b.{keys[0]} IS NULL) AS only_left", f"count(*) FILTER (a.{keys[0]} IS NULL) AS only_right"]
        + [f"count(*) FILTER (a.{keys[0]} IS NOT NULL AND b.{keys[0]} IS NOT NULL AND NOT {_same(c)}) AS \"{c}\""
           for c in columns]
    )
    row = con.execute(f"SELECT count(*) AS compared, {only} FROM {left} a FULL JOIN {right} b ON {on} WHERE {where}")
    names = [d[0] for d in row.description]
    values = dict(zip(names, row.fetchone()))
    mismatches = {c: int(values[c]) for c in columns if values[c]}
    return {
        "compared": int(values["compared"]),
        "only_left": int(values["only_left"]),
        "only_right": int(values["only_right"]),
        "mismatches": mismatches,
        "agree": not values["only_left"] and not values["only_right"] and not mismatches,
    }


def compare_backfills(featurebank: str, per_date: str, duckdb_out: str, dates: list[date]) -> dict[str, Any]:
    """Compare the three backfill outputs on `dates`: featurebank's and the per-date job's
    Delta tables, DuckDB's Parquet directory. Returns row counts and, per pair, rows on one
    side only and per-feature mismatches; `agree` is True when all three agree."""
    con = _connect()
    fb_rows = _delta_dates(featurebank, dates)  # noqa: F841 (DuckDB reads the local by name)
    pd_rows = _delta_dates(per_date, dates)  # noqa: F841
    date_list = ", ".join(f"DATE '{d}'" for d in dates)
    cols = ", ".join(("customer_id", "feature_date::DATE AS feature_date", *FEATURES))
    con.execute(f"CREATE TABLE fb AS SELECT {cols} FROM fb_rows")
    con.execute(f"CREATE TABLE pd AS SELECT {cols} FROM pd_rows")
    con.execute(f"CREATE TABLE dk AS SELECT {cols} FROM read_parquet('{Path(duckdb_out)}/**/*.parquet', "
                f"hive_partitioning = true) WHERE feature_date::DATE IN ({date_list})")
    keys = ("customer_id", "feature_date")
    pairs = {
        "featurebank vs per-date Spark": _compare(con, "fb", "pd", keys, FEATURES),
        "featurebank vs DuckDB": _compare(con, "fb", "dk", keys, FEATURES),
        "per-date Spark vs DuckDB": _compare(con, "pd", "dk", keys, FEATURES),
    }
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("fb", "pd", "dk")}
    return {
        "dates": [str(d) for d in dates],
        "rows": {"featurebank": counts["fb"], "per_date": counts["pd"], "duckdb": counts["dk"]},
        "pairs": pairs,
        "agree": all(p["agree"] for p in pairs.values()) and counts["fb"] > 0,
    }


def compare_pair(featurebank: str, duckdb_out: str, dates: list[date]) -> dict[str, Any]:
    """featurebank's Delta table against DuckDB's Parquet directory on `dates` (bench.small's
    check: no per-date job there); the pair's result plus the row count, `agree` as above."""
    con = _connect()
    fb_rows = _delta_dates(featurebank, dates)  # noqa: F841 (DuckDB reads the local by name)
    date_list = ", ".join(f"DATE '{d}'" for d in dates)
    cols = ", ".join(("customer_id", "feature_date::DATE AS feature_date", *FEATURES))
    con.execute(f"CREATE TABLE fb AS SELECT {cols} FROM fb_rows")
    con.execute(f"CREATE TABLE dk AS SELECT {cols} FROM read_parquet('{Path(duckdb_out)}/**/*.parquet', "
                f"hive_partitioning = true) WHERE feature_date::DATE IN ({date_list})")
    pair = _compare(con, "fb", "dk", ("customer_id", "feature_date"), FEATURES)
    rows = con.execute("SELECT count(*) FROM fb").fetchone()[0]
    return {**pair, "rows": rows, "agree": pair["agree"] and rows > 0}


def compare_training_sets(featurebank: str, naive: str, duckdb_out: str) -> dict[str, Any]:
    """Compare training sets by spine `row_id`. The naive join and the ASOF join take the
    latest row with feature_ts <= ts, which for a customer with no row on date(ts) is an
    older, stale snapshot; featurebank (SPEC) uses the row of date(ts) or, when there is none,
    0 for counts and NULL otherwise. So: naive and DuckDB must agree on every row;
    featurebank must agree with them wherever their row is date(ts)'s; elsewhere the rows
    are counted as 'stale in the latest-row joins'."""
    con = _connect()
    con.execute(f"CREATE VIEW fb AS SELECT * FROM read_parquet('{Path(featurebank)}/**/*.parquet')")
    con.execute(f"CREATE VIEW nv AS SELECT * FROM read_parquet('{Path(naive)}/**/*.parquet')")
    con.execute(f"CREATE VIEW dk AS SELECT * FROM '{duckdb_out}'")
    rows = {t: con.execute(f"SELECT count(*), count(DISTINCT row_id) FROM {t}").fetchone() for t in ("fb", "nv", "dk")}
    keys = ("row_id",)
    naive_vs_duck = _compare(con, "nv", "dk", keys, FEATURES)
    fresh = "b.feature_ts::DATE = b.ts::DATE"
    fb_vs_naive = _compare(con, "fb", "nv", keys, FEATURES, where=fresh)
    stale = con.execute(
        "SELECT count(*) FILTER (feature_ts IS NOT NULL AND feature_ts::DATE < ts::DATE), "
        "count(*) FILTER (feature_ts IS NULL) FROM nv"
    ).fetchone()
    return {
        "rows": {"featurebank": rows["fb"][0], "naive": rows["nv"][0], "duckdb": rows["dk"][0]},
        "distinct_row_ids": {"featurebank": rows["fb"][1], "naive": rows["nv"][1], "duckdb": rows["dk"][1]},
        "pairs": {"naive Spark vs DuckDB ASOF (all rows)": naive_vs_duck,
                  "featurebank vs naive Spark (rows whose latest snapshot is date(ts))": fb_vs_naive},
        "stale_in_latest_row_joins": int(stale[0]),
        "no_row_at_all": int(stale[1]),
        "agree": naive_vs_duck["agree"] and fb_vs_naive["mismatches"] == {}
        and rows["fb"][0] == rows["nv"][0] == rows["dk"][0] == rows["fb"][1],
    }
