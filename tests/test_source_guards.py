"""What a run may publish (SPEC): source guards decide before compute, and refuse with exit 1.

Issue 16, finding 3: an empty source, or one whose event times are all NULL, published 0 rows
over existing data (exit 0), and a run for a date the source never reached was logged
`published`. Each test writes a tiny project (one source, an aggregation group and a
row-level group) so the source's lag and readiness signal are the test's to choose.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurebank.catalog.status import group_status
from featurebank.cli import main
from featurebank.definitions import load_project
from featurebank.readiness import check_source, refuse_future_dates
from featurebank.errors import DefinitionError, SourceNotReady, UsageError, exit_code_for
from featurebank.compile.run import compile_plan
from featurebank.io.runlog import read_runs
from featurebank.runner import run_group

D1 = date(2024, 3, 1)
LAST_DAY = date(2024, 3, 5)  # the source's data ends on this event day

SCHEMA = pa.schema([("customer_id", pa.string()), ("amount", pa.float64()), ("ts", pa.timestamp("us", tz="UTC")),
                    ("loaded_until", pa.timestamp("us", tz="UTC"))])
CONF = "feature_root: ./warehouse/features\nvariables: {raw_root: ./raw}\ntimezone: UTC\ncatalog: {type: none}\n"
DEFINITIONS = """\
kind: entity
name: customer
keys: [customer_id]
---
kind: source
name: events
format: parquet
path: ${{raw_root}}/events
timestamp: ts
columns: {{customer_id: string, amount: double, ts: timestamp, loaded_until: timestamp}}
{source_extra}
---
kind: feature_group
name: spend
entity: customer
source: events
aggregations:
  - {{name: spend, expr: amount, function: sum, windows: [7d]}}
{group_extra}
---
kind: feature_group
name: amounts
entity: customer
source: events
features:
  - {{name: amount, expr: amount}}
"""


def _events(first: date = date(2024, 2, 25), last: date = LAST_DAY, per_day: int = 3,
            null_times: bool = False, loaded_until: datetime | None = None) -> pd.DataFrame:
    rows = []
    day = first
    while day <= last:
        for i in range(per_day):
            ts = datetime(day.year, day.month, day.day, 1 + i, tzinfo=timezone.utc)
            rows.append((f"c{i}", float(10 + i + day.day), None if null_times else ts, loaded_until or ts))
        day += timedelta(days=1)
    frame = pd.DataFrame(rows, columns=["customer_id", "amount", "ts", "loaded_until"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).astype("datetime64[us, UTC]")
    frame["loaded_until"] = pd.to_datetime(frame["loaded_until"], utc=True).astype("datetime64[us, UTC]")
    return frame


def _project(root: Path, events: pd.DataFrame, source_extra: str = "", group_extra: str = ""):
    (root / "conf").mkdir(parents=True, exist_ok=True)
    (root / "conf" / "local.yaml").write_text(CONF)
    (root / "features").mkdir(exist_ok=True)
    (root / "features" / "all.yaml").write_text(DEFINITIONS.format(source_extra=source_extra, group_extra=group_extra))
    _write(root, events)
    return load_project(root, "local")


def _write(root: Path, events: pd.DataFrame) -> None:
    target = root / "raw" / "events"
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.parquet"):
        old.unlink()
    pq.write_table(pa.Table.from_pandas(events, schema=SCHEMA, preserve_index=False), target / "part-0.parquet")


def _dates(spark, project, group: str = "spend") -> dict[date, int]:
    rows = spark.read.format("delta").load(project.table_path(group)).groupBy("feature_date").count().collect()
    return {r["feature_date"]: r["count"] for r in rows}


def test_empty_source_refuses_to_publish_and_keeps_the_published_rows(spark, tmp_path):
    project = _project(tmp_path, _events())
    run_group(project, "spend", D1, D1 + timedelta(days=2), spark=spark)
    before = _dates(spark, project)
    assert sorted(before) == [D1, D1 + timedelta(days=1), D1 + timedelta(days=2)]

    _write(tmp_path, _events().iloc[0:0])  # the source is emptied (same schema, no rows)
    with pytest.raises(SourceNotReady) as refused:
        run_group(project, "spend", D1, D1 + timedelta(days=2), spark=spark)

    message = str(refused.value)
    assert "source events" in message and "no rows with an event time in [2024-02-23, 2024-03-03)" in message
    assert "empty_input: allowed" in message and exit_code_for(refused.value) == 1
    assert _dates(spark, project) == before  # nothing replaced with nothing
    last = read_runs(spark, project.config.feature_root, "spend")[0]
    assert last.status == "gate_failed" and "SourceNotReady" in (last.error or "")
    report = json.loads(Path(refused.value.report).read_text())
    assert report["rows_in_read_range"] == 0 and report["refused_dates"] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert Path(refused.value.report).parent.parent.name == "spend"  # <feature_root>/_reports/spend/<run_id>/


def test_source_whose_event_times_are_all_null_is_refused_like_an_empty_one(spark, tmp_path):
    project = _project(tmp_path, _events(null_times=True))
    with pytest.raises(SourceNotReady, match=r"no rows with an event time .*; 30 rows have no ts"):
        run_group(project, "spend", D1, D1, spark=spark)
    assert not Path(project.table_path("spend")).exists()


def test_cli_exits_1_for_an_empty_source_and_says_why(spark, tmp_path, capsys):
    project = _project(tmp_path, _events().iloc[0:0])
    code = main(["run", "spend", "--project", str(project.root), "--start", str(D1), "--end", str(D1 + timedelta(days=2))])
    err = capsys.readouterr().err
    assert code == 1 and "source events is not ready for feature group spend" in err and "readiness.json" in err


def test_group_declaring_empty_input_allowed_publishes_nothing_without_refusing(spark, tmp_path):
    quiet = LAST_DAY + timedelta(days=8)  # reads [2024-03-06, 2024-03-13): no events, within the 10d lag
    project = _project(tmp_path, _events(), source_extra="lag: 10d", group_extra="empty_input: allowed")
    [outcome] = run_group(project, "spend", quiet, quiet, spark=spark)
    assert outcome.status == "published" and outcome.rows_written == 0


def test_empty_input_allowed_still_refuses_a_source_older_than_its_lag(spark, tmp_path):
    project = _project(tmp_path, _events(), group_extra="empty_input: allowed")
    with pytest.raises(SourceNotReady, match="latest event day is 2024-03-05 and its lag is 1d"):
        run_group(project, "spend", date(2024, 11, 26), date(2024, 11, 26), spark=spark)


def test_row_level_group_refuses_an_empty_read_range(spark, tmp_path):
    project = _project(tmp_path, _events(last=date(2024, 2, 27)), source_extra="lag: 30d")
    with pytest.raises(SourceNotReady, match=r"no rows with an event time in \[2024-03-01, 2024-03-03\)"):
        run_group(project, "amounts", D1, D1 + timedelta(days=1), spark=spark)


@pytest.mark.parametrize(("lag", "last_ok"), [("", LAST_DAY + timedelta(days=2)), ("lag: 0d", LAST_DAY + timedelta(days=1)),
                                              ("lag: 3d", LAST_DAY + timedelta(days=4))])
def test_snapshot_date_is_publishable_only_up_to_latest_event_day_plus_1_plus_lag(spark, tmp_path, lag, last_ok):
    project = _project(tmp_path, _events(), source_extra=lag)
    [outcome] = run_group(project, "spend", last_ok, last_ok, spark=spark)
    assert outcome.status == "published"

    too_late = last_ok + timedelta(days=1)
    with pytest.raises(SourceNotReady) as refused:
        run_group(project, "spend", last_ok, too_late, spark=spark)
    message = str(refused.value)
    lag_days = lag.removeprefix("lag: ") or "1d"
    assert f"latest event day is {LAST_DAY} and its lag is {lag_days}" in message
    assert f"snapshot dates {too_late} are not yet publishable" in message
    assert _dates(spark, project) == {last_ok: 3}  # the refused chunk published nothing


def test_run_for_a_date_the_source_never_reached_is_refused_not_published(spark, tmp_path):
    project = _project(tmp_path, _events())  # data ends 2024-03-05: "today" two years later
    with pytest.raises(SourceNotReady, match="latest event day is 2024-03-05"):
        run_group(project, "spend", date(2024, 11, 26), date(2024, 11, 26), spark=spark)
    runs = read_runs(spark, project.config.feature_root, "spend")
    assert runs[0].status == "gate_failed"
    assert group_status("spend", runs, date(2024, 11, 26)).freshness == "never published"  # not "fresh"


def test_future_snapshot_date_is_a_usage_error_before_anything_runs(spark, tmp_path, capsys):
    project = _project(tmp_path, _events())
    with pytest.raises(UsageError, match="2099-12-31 is in the future"):
        run_group(project, "spend", date(2099, 12, 31), date(2099, 12, 31), spark=spark)
    assert main(["run", "spend", "--project", str(project.root), "--date", "2099-12-31"]) == 2
    assert "in the future" in capsys.readouterr().err
    assert not Path(project.config.feature_root, "_runs").exists()


def test_today_is_publishable_and_tomorrow_is_not():
    refuse_future_dates(date(2024, 3, 10), "Europe/Amsterdam", today=date(2024, 3, 10))
    with pytest.raises(UsageError, match="the latest date a run may publish is 2024-03-10"):
        refuse_future_dates(date(2024, 3, 11), "Europe/Amsterdam", today=date(2024, 3, 10))


def test_missing_readiness_marker_refuses_and_its_arrival_publishes(spark, tmp_path):
    project = _project(tmp_path, _events(), source_extra="readiness: {marker: _SUCCESS}")
    with pytest.raises(SourceNotReady, match=r"readiness marker .*raw/events/_SUCCESS does not exist"):
        run_group(project, "spend", D1, D1, spark=spark)
    (tmp_path / "raw" / "events" / "_SUCCESS").write_text("")
    [outcome] = run_group(project, "spend", D1, D1, spark=spark)
    assert outcome.status == "published"


def test_half_landed_day_outside_daily_rows_is_refused_naming_the_day_and_count(spark, tmp_path):
    events = _events()
    half_landed = events[~((events.ts.dt.date == date(2024, 2, 29)) & (events.customer_id != "c0"))]
    project = _project(tmp_path, half_landed, source_extra="readiness: {daily_rows: {min: 2, max: 10}}")
    with pytest.raises(SourceNotReady, match=r"2024-02-29: 1 rows"):
        run_group(project, "spend", D1, D1, spark=spark)
    _write(tmp_path, events)
    [outcome] = run_group(project, "spend", D1, D1, spark=spark)
    assert outcome.status == "published"


def test_watermark_short_of_a_snapshot_refuses_that_date(spark, tmp_path):
    loaded = datetime(2024, 3, 2, 6, tzinfo=timezone.utc)  # complete up to 2 March 06:00
    project = _project(tmp_path, _events(loaded_until=loaded), source_extra="readiness: {watermark: loaded_until}")
    [outcome] = run_group(project, "spend", D1, D1 + timedelta(days=1), spark=spark)  # needs events before 2 March 00:00
    assert outcome.status == "published"
    with pytest.raises(SourceNotReady, match=r"watermark max\(loaded_until\) is 2024-03-02 06:00:00\+00:00, so snapshot dates 2024-03-03"):
        run_group(project, "spend", D1, D1 + timedelta(days=2), spark=spark)


def test_guard_returns_the_rows_of_every_event_day_it_read(spark, tmp_path):
    project = _project(tmp_path, _events(first=D1 - timedelta(days=1)))
    plan = compile_plan(project, "spend", D1, D1 + timedelta(days=1))  # reads [2024-02-23, 2024-03-02)
    counts = check_source(spark, plan, "run-1", project.config.feature_root)
    assert counts == {date(2024, 2, 23) + timedelta(days=i): 0 for i in range(6)} | {date(2024, 2, 29): 3, D1: 3}


@pytest.mark.parametrize(("extra", "error"), [
    ("lag: 2", "lag 2 is not a whole number of days; write it as '2d'"),
    ("lag: 731d", "lag '731d' is outside 0d..730d"),
    ("readiness: {marker: _SUCCESS, watermark: loaded_until}", "must name exactly one signal"),
    ("readiness: {watermark: amount}", "readiness watermark 'amount' of source 'events' must be a declared time column"),
    ("readiness: {daily_rows: {min: 10, max: 5}}", "has min 10 above max 5"),
    ("readiness: {daily_rows: {min: -1}}", "takes min: and max: as whole numbers >= 0"),
    ("readiness: {flag: x}", "unknown readiness signal 'flag'"),
])
def test_bad_lag_or_readiness_is_a_definition_error_with_file_and_line(tmp_path, extra, error):
    with pytest.raises(DefinitionError) as raised:
        _project(tmp_path, _events(), source_extra=extra)
    assert "all.yaml:11: " in str(raised.value) and error in str(raised.value)


def test_bad_empty_input_is_a_definition_error_with_file_and_line(tmp_path):
    with pytest.raises(DefinitionError, match=r"all.yaml:19: empty_input of feature group 'spend' is 'yes'"):
        _project(tmp_path, _events(), group_extra="empty_input: 'yes'")
