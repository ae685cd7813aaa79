"""The one day-cut rule (featurebank.days): which local day an instant falls on."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from featurebank.days import EPOCH, MICROS_PER_DAY, day_start_instant, epoch_day


def test_epoch_days_count_from_1970():
    assert (epoch_day(EPOCH), epoch_day(date(1970, 1, 2)), epoch_day(date(1969, 12, 31))) == (0, 1, -1)
    assert MICROS_PER_DAY == 24 * 3600 * 1_000_000


def test_a_local_day_begins_at_local_midnight_across_daylight_saving():
    zurich = ZoneInfo("Europe/Zurich")
    assert day_start_instant(date(2024, 3, 31), "Europe/Zurich") == datetime(2024, 3, 30, 23, tzinfo=timezone.utc)
    assert day_start_instant(date(2024, 4, 1), "Europe/Zurich") == datetime(2024, 3, 31, 22, tzinfo=timezone.utc)
    assert day_start_instant(date(2024, 4, 1), "Europe/Zurich").tzinfo == zurich


def test_spark_cuts_days_where_python_does(spark):
    # Instants around midnight and the DST changes, in three zones: the Spark forms agree with zoneinfo.
    from pyspark.sql import functions as F

    from featurebank.days import day_start_ts, local_date, local_epoch_day

    base = [datetime(2024, 3, 30, 21, tzinfo=timezone.utc), datetime(2023, 12, 31, 23, tzinfo=timezone.utc),
            datetime(1969, 12, 31, 23, 59, 59, tzinfo=timezone.utc), datetime(2024, 11, 3, 3, tzinfo=timezone.utc)]
    instants = [b + timedelta(minutes=m) for b in base for m in range(0, 300, 29)]
    frame = spark.createDataFrame([(i,) for i in instants], "ts timestamp")
    for tz in ("Europe/Zurich", "America/New_York", "Asia/Kolkata"):
        rows = frame.select(
            F.unix_micros("ts").alias("micros"), local_epoch_day(F.col("ts"), tz).alias("day"),
            local_date(F.col("ts"), tz).alias("date"), F.unix_micros(day_start_ts(local_epoch_day(F.col("ts"), tz), tz)).alias("start"),
        ).collect()
        for r in rows:
            instant = datetime.fromtimestamp(r["micros"] / 1e6, timezone.utc)
            local = instant.astimezone(ZoneInfo(tz)).date()
            assert (r["day"], r["date"]) == (epoch_day(local), local), (tz, instant)
            assert r["start"] == int(day_start_instant(local, tz).timestamp()) * 1_000_000, (tz, instant)
