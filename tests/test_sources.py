"""read_source: declared types checked first, time columns as instants, event-time range pushed down."""

from __future__ import annotations

from datetime import date, datetime, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from featurebank.io.sources import read_source
from featurebank.errors import SourceMismatch
from featurebank.compile.group import SourceRead

ZURICH = "Europe/Zurich"


def source(location: str, fmt: str = "parquet", declared=(("amount", "double"), ("event_ts", "timestamp")), **kw) -> SourceRead:
    fields = dict(
        name="card_transactions", format=fmt, location=location, timestamp="event_ts",
        columns=("customer_id", "amount", "event_ts"), declared_types=tuple(declared), read_start=None, read_end_exclusive=None,
    )
    fields.update(kw)
    return SourceRead(**fields)


def micros(wall: str, tz: str) -> int:
    """Epoch microseconds of a wall-clock time in `tz`."""
    return int(datetime.fromisoformat(wall).replace(tzinfo=ZoneInfo(tz)).timestamp()) * 1_000_000


def instants(df) -> dict[str, int]:
    return {r.customer_id: r.m for r in df.selectExpr("customer_id", "unix_micros(event_ts) as m").collect()}


WALLS = {"a": "2024-03-30 23:30:00", "b": "2024-03-31 00:00:00", "c": "2024-03-31 12:15:00"}


def pandas_frame(zone: str | None = None) -> pd.DataFrame:
    ts = pd.to_datetime(list(WALLS.values()))
    return pd.DataFrame({
        "customer_id": list(WALLS), "amount": [1.5, 2.0, None], "status": ["x", "y", "z"],
        "event_ts": ts.tz_localize(zone) if zone else ts,
    })


def test_pandas_nanosecond_naive_timestamps_are_wall_clock_in_project_zone(spark, tmp_path):
    path = str(tmp_path / "naive")
    pandas_frame().to_parquet(path + ".parquet")  # pyarrow default: TIMESTAMP(NANOS), naive
    df = read_source(spark, source(path + ".parquet"), ZURICH)
    assert df.columns == ["customer_id", "amount", "event_ts"]
    assert dict(df.dtypes)["event_ts"] == "timestamp"
    assert instants(df) == {k: micros(v, ZURICH) for k, v in WALLS.items()}


def test_pandas_nanosecond_zoned_timestamps_stay_instants(spark, tmp_path):
    path = str(tmp_path / "zoned.parquet")
    pandas_frame("America/New_York").to_parquet(path)
    df = read_source(spark, source(path), ZURICH)
    assert instants(df) == {k: micros(v, "America/New_York") for k, v in WALLS.items()}


def test_timestamp_ntz_is_wall_clock_in_project_zone_whatever_the_session_zone(spark, tmp_path):
    path = str(tmp_path / "ntz.parquet")
    pandas_frame().to_parquet(path, coerce_timestamps="us")  # micros, naive: Spark reads TIMESTAMP_NTZ
    assert dict(spark.read.parquet(path).dtypes)["event_ts"] == "timestamp_ntz"
    assert instants(read_source(spark, source(path), ZURICH)) == {k: micros(v, ZURICH) for k, v in WALLS.items()}
    spark.conf.set("spark.sql.session.timeZone", "Asia/Tokyo")
    try:
        assert instants(read_source(spark, source(path), ZURICH)) == {k: micros(v, ZURICH) for k, v in WALLS.items()}
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


def test_declared_type_mismatch_names_source_column_and_both_types(spark, tmp_path):
    path = str(tmp_path / "bad.parquet")
    frame = pandas_frame()
    frame["amount"] = frame["amount"].astype(str)
    frame.to_parquet(path)
    with pytest.raises(SourceMismatch) as err:
        read_source(spark, source(path), ZURICH)
    message = str(err.value)
    assert "source 'card_transactions'" in message and path in message
    assert "column amount is string, the definition says double" in message


def test_missing_column_is_a_source_mismatch(spark, tmp_path):
    path = str(tmp_path / "missing.parquet")
    pandas_frame().drop(columns=["amount"]).to_parquet(path)
    with pytest.raises(SourceMismatch, match="column amount is missing"):
        read_source(spark, source(path), ZURICH)


def test_event_time_that_is_not_a_time_is_a_source_mismatch(spark, tmp_path):
    path = str(tmp_path / "notime.parquet")
    frame = pandas_frame()
    frame["event_ts"] = ["x", "y", "z"]
    frame.to_parquet(path)
    with pytest.raises(SourceMismatch, match="column event_ts is string"):
        read_source(spark, source(path, declared=()), ZURICH)


@pytest.mark.parametrize("kind", ["nanos_naive", "ntz", "instant"])
def test_read_range_cuts_days_at_local_midnight_and_is_pushed_into_the_scan(spark, tmp_path, kind):
    path = str(tmp_path / f"{kind}.parquet")
    frame = pandas_frame()
    if kind == "nanos_naive":
        frame.to_parquet(path)
    elif kind == "ntz":
        frame.to_parquet(path, coerce_timestamps="us")
    else:
        spark.createDataFrame(
            [(k, 1.0, datetime.fromisoformat(v).replace(tzinfo=ZoneInfo(ZURICH)).astimezone(dt_timezone.utc)) for k, v in WALLS.items()],
            "customer_id string, amount double, event_ts timestamp",
        ).write.parquet(path)
    read = source(path, read_start=date(2024, 3, 31), read_end_exclusive=date(2024, 4, 1))
    df = read_source(spark, read, ZURICH)
    assert sorted(instants(df)) == ["b", "c"]  # 23:30 local on the 30th is outside
    plan = df._jdf.queryExecution().executedPlan().toString()
    assert "PushedFilters: [IsNotNull(event_ts), GreaterThanOrEqual(event_ts," in plan, plan
    assert "LessThan(event_ts," in plan


def test_csv_timestamps_with_offset_are_instants_and_without_are_local(spark, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "customer_id,amount,event_ts,status\n"
        "a,1.5,2024-03-30 23:30:00,x\n"
        "b,2,2024-03-31T00:00:00+01:00,y\n"
        "c,,2024-03-31T10:15:00Z,z\n"
    )
    df = read_source(spark, source(str(path), fmt="csv"), ZURICH)
    assert dict(df.dtypes) == {"customer_id": "string", "amount": "double", "event_ts": "timestamp"}
    assert instants(df) == {"a": micros(WALLS["a"], ZURICH), "b": micros(WALLS["b"], ZURICH), "c": micros(WALLS["c"], ZURICH)}
    assert [r.amount for r in df.orderBy("customer_id").collect()] == [1.5, 2.0, None]


def test_delta_source_reads_declared_columns(spark, tmp_path):
    path = str(tmp_path / "delta")
    spark.createDataFrame(
        [("a", 1.0, datetime(2024, 1, 1, 12, tzinfo=dt_timezone.utc), "x")],
        "customer_id string, amount double, event_ts timestamp, status string",
    ).write.format("delta").save(path)
    df = read_source(spark, source(path, fmt="delta"), "UTC")
    assert df.columns == ["customer_id", "amount", "event_ts"]
    assert instants(df) == {"a": micros("2024-01-01 12:00:00", "UTC")}


def test_zoned_nanosecond_timestamps_under_a_glob_path_stay_instants(spark, tmp_path):
    """Issue 16, finding 13: Spark reads a glob that pyarrow cannot open; the footer must still
    be read (through Spark's file system), not guessed naive and shifted by the zone's offset."""
    folder = tmp_path / "events"
    folder.mkdir()
    pandas_frame("America/New_York").to_parquet(folder / "part-0.parquet")
    df = read_source(spark, source(str(folder / "part-*.parquet")), ZURICH)
    assert instants(df) == {k: micros(v, "America/New_York") for k, v in WALLS.items()}


def test_unreadable_parquet_footer_is_refused_naming_file_and_column_not_assumed_naive(spark, tmp_path):
    from featurebank.io.sources import parquet_time_columns
    from featurebank.errors import SourceUnreadable, exit_code_for

    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "part-0.parquet").write_bytes(b"this is not a Parquet file")
    with pytest.raises(SourceUnreadable) as refused:
        parquet_time_columns(spark, source(str(folder)), files=[str(folder / "part-0.parquet")], columns=("event_ts",))
    message = str(refused.value)
    assert "cannot read the Parquet footer of" in message and "part-0.parquet" in message
    assert "whether event_ts is zoned" in message and "not a Parquet file" in message
    assert "source 'card_transactions'" in message and exit_code_for(refused.value) == 3
